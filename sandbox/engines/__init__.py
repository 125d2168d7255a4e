"""Offline engines standing in for AWS services in the local sandbox (OCR, faces)."""
