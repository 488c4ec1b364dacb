// @generated automatically by Diesel CLI.

diesel::table! {
    dedup_generations (generation) {
        generation -> Int4,
        started_at -> Timestamptz,
    }
}

diesel::table! {
    dedup_keys (source, dedup_key, generation) {
        generation -> Int4,
        source -> Text,
        dedup_key -> Text,
        event_id -> Uuid,
        received_at -> Timestamptz,
        earlier_event_ids -> Nullable<Array<Nullable<Uuid>>>,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Int8,
        event_id -> Uuid,
        destination -> Text,
        source -> Text,
        resource_key -> Nullable<Text>,
        status -> Nullable<Text>,
        outcome -> Nullable<Text>,
        state -> Text,
        attempts -> Int4,
        last_status -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        latency_ms -> Nullable<Int4>,
        next_attempt_at -> Timestamptz,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    delivery_leases (id) {
        id -> Int8,
        destination -> Text,
        entries -> Int4,
        event_ids -> Array<Nullable<Uuid>>,
        sources -> Array<Nullable<Text>>,
        resource_keys -> Array<Nullable<Text>>,
        statuses -> Array<Nullable<Text>>,
        outcomes -> Array<Nullable<Text>>,
        settled -> Int4,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    destination_pauses (destination) {
        destination -> Text,
        reason -> Text,
        paused_at -> Timestamptz,
    }
}

diesel::table! {
    event_payloads (id) {
        id -> Uuid,
        headers -> Jsonb,
        query -> Text,
        body -> Bytea,
    }
}

diesel::table! {
    events (id) {
        id -> Uuid,
        source -> Text,
        dedup_key -> Text,
        resource_key -> Nullable<Text>,
        status -> Nullable<Text>,
        state -> Text,
        traceparent -> Nullable<Text>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        received_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Uuid,
        received_at -> Timestamptz,
        event_ids -> Array<Nullable<Uuid>>,
    }
}

diesel::table! {
    resources (source, resource_key) {
        source -> Text,
        resource_key -> Text,
        status -> Nullable<Text>,
        terminal -> Bool,
        last_event_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    retention_progress (source) {
        source -> Text,
        payload_pruned_before -> Timestamptz,
    }
}

diesel::table! {
    transitions (id, at) {
        id -> Int8,
        source -> Text,
        resource_key -> Text,
        event_id -> Nullable<Uuid>,
        from_status -> Nullable<Text>,
        to_status -> Text,
        outcome -> Text,
        reason -> Nullable<Text>,
        actor -> Nullable<Text>,
        at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    dedup_generations,
    dedup_keys,
    deliveries,
    delivery_leases,
    destination_pauses,
    event_payloads,
    events,
    outbox,
    resources,
    retention_progress,
    transitions,
);
