//! Pure policy evaluation: (image, signature outcome, scan report) → verdict. No I/O.
