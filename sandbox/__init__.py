"""SnapRace local sandbox: the whole system on one machine with no AWS account.

Not deployed (it lives outside chalicelib/). The tests use its harness pieces too: the stage
environment, resource creation and the in-process Lambda dispatcher.
"""
