"""The B2B data model: profiles, membership history and account attribution of events."""
