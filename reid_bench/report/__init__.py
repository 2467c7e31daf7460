"""The HTML report: published vs reproduced, per table."""
