"""Delivery: the outbox worker, its rules (quiet hours, digests, retries), the channels and message rendering."""
