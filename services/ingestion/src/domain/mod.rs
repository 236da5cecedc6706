//! Ingestion's rules: what a valid customer is. No I/O here.

pub mod customer;
