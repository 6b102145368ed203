"""The one STS <-> agent wire contract: job spec and its limits, job documents, leases, results,
decision traces, token claims per profile, and the job digest. Imports only ``realms``."""
