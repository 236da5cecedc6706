//! End-to-end tests live in `tests/`: every service and the gateway started in-process
//! on port 0 against real PostgreSQL and RabbitMQ (see `mkt-test-support`).
