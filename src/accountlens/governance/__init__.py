"""Governance (SPEC §2): who may do what (tokens and roles), what a CSM's book shows, the audit
trail, retention and the deletion of a person (docs/governance.md)."""
