"""rater: a streaming CDR rater for VoIP resellers and calling cards."""

__version__ = "0.1.0"
