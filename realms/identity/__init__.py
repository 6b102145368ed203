"""Who someone is: realm names, access IDs, principals, and the checks on typed credentials."""
