"""Hostile trials for the audit: cheats an agent could try, and honest changes that must stay valid."""
