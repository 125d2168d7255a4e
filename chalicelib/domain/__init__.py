"""Pure domain: stdlib, Pillow and thumbhash only; no boto3, no adapters, no environment."""
