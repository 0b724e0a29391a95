"""Security: vulnerability findings from scanners and feeds, matched against SBOMs."""
