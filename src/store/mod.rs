//! Verdicts, layer results and history in an embedded, crash-safe database.
