//! Layer scanning: blob access (mmap), decompression, tar walk, analyzers.
