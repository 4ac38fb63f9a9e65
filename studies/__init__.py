"""Study scripts (`python -m studies.NAME`) and the runs they made; nothing here is shipped."""
