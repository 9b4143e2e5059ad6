"""MassMailer's benchmark harness: ``make bench`` (``python -m bench``). See the README's Performance section."""
