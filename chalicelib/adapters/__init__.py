"""Adapters, one per AWS service: each is handed its boto3 client and speaks domain values."""
