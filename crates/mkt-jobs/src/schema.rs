// @generated automatically by Diesel CLI.

diesel::table! {
    /// The shared job queue (see the migration for what each column means).
    jobs (id) {
        /// The job's id; domains use their own row's id (an import, a run).
        id -> Uuid,
        /// `<service>.<kind>`.
        queue -> Text,
        /// The tenant the job works for.
        tenant_id -> Text,
        /// queued | running | succeeded | failed.
        state -> Text,
        /// Starts so far (the fencing token of the current one).
        attempts -> Int4,
        /// Starts allowed before the job fails for good.
        max_attempts -> Int4,
        /// Not before.
        run_at -> Timestamptz,
        /// The running worker's lease.
        lease_until -> Nullable<Timestamptz>,
        /// The running worker's last sign of life.
        heartbeat_at -> Nullable<Timestamptz>,
        /// 0..1, as the handler reports it.
        progress -> Float8,
        /// Why the last attempt failed.
        last_error -> Nullable<Text>,
        /// Enqueued.
        created_at -> Timestamptz,
        /// First started.
        started_at -> Nullable<Timestamptz>,
        /// Succeeded or failed for good.
        finished_at -> Nullable<Timestamptz>,
    }
}
