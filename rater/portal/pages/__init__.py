"""One module per portal page; rater/portal/app.py lists their routes."""
