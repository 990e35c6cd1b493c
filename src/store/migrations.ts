/**
 * Versioned schema migrations: an ordered list, each applied once, in its own transaction, and recorded in
 * `schema_migrations`. Each carries its SQLite and its PostgreSQL dialect, so both stores share versions and
 * names. Never edit a released migration; append a new one.
 *
 * PostgreSQL keys are `TEXT COLLATE "C"` so they compare byte-wise (UTF-8) as SQLite's do: keyset paging and
 * `ORDER BY` then return the same order on both.
 */
import type { Database } from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  /** SQLite. */
  sql: string;
  postgres: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'cohort sync state and ledgers',
    sql: `
      CREATE TABLE snapshot_members (
        sync_id    TEXT NOT NULL,
        member_key TEXT NOT NULL,
        PRIMARY KEY (sync_id, member_key)
      ) WITHOUT ROWID;

      CREATE TABLE attribute_snapshots (
        sync_id    TEXT NOT NULL,
        member_key TEXT NOT NULL,
        attribute  TEXT NOT NULL,
        value      TEXT NOT NULL,
        PRIMARY KEY (sync_id, member_key, attribute)
      ) WITHOUT ROWID;

      CREATE TABLE staging_checkpoints (
        run_id         TEXT PRIMARY KEY,
        rows_consumed  INTEGER NOT NULL,
        bytes_consumed INTEGER NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE staged_members (
        run_id       TEXT NOT NULL,
        member_key   TEXT NOT NULL,
        amplitude_id TEXT NOT NULL,
        user_id      TEXT,
        device_id    TEXT,
        props        TEXT,
        PRIMARY KEY (run_id, member_key)
      ) WITHOUT ROWID;

      CREATE TABLE runs (
        run_id         TEXT PRIMARY KEY,
        sync_id        TEXT NOT NULL,
        kind           TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
        started_at     TEXT NOT NULL,
        finished_at    TEXT,
        source_version TEXT,
        stats          TEXT
      );
      CREATE INDEX runs_by_start ON runs (started_at);
      CREATE INDEX runs_by_sync_start ON runs (sync_id, started_at);
      CREATE INDEX runs_succeeded_by_sync ON runs (sync_id, finished_at) WHERE status = 'succeeded';

      CREATE TABLE data_points (
        run_id   TEXT NOT NULL,
        page_key TEXT NOT NULL,
        day      TEXT NOT NULL,
        sync_id  TEXT NOT NULL,
        points   INTEGER NOT NULL CHECK (points >= 0),
        PRIMARY KEY (run_id, page_key)
      ) WITHOUT ROWID;
      CREATE INDEX data_points_by_day ON data_points (day, sync_id);

      CREATE TABLE cohort_downloads (
        run_id      TEXT NOT NULL,
        cohort_id   TEXT NOT NULL,
        month       TEXT NOT NULL,
        reserved_at TEXT NOT NULL,
        PRIMARY KEY (run_id, cohort_id)
      ) WITHOUT ROWID;
      CREATE INDEX cohort_downloads_by_month ON cohort_downloads (month);

      CREATE TABLE member_failures (
        run_id     TEXT NOT NULL,
        member_key TEXT NOT NULL,
        reason     TEXT NOT NULL,
        PRIMARY KEY (run_id, member_key)
      ) WITHOUT ROWID;
      CREATE INDEX member_failures_by_reason ON member_failures (run_id, reason);
    `,
    postgres: `
      CREATE TABLE snapshot_members (
        sync_id    TEXT COLLATE "C" NOT NULL,
        member_key TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (sync_id, member_key)
      );

      CREATE TABLE attribute_snapshots (
        sync_id    TEXT COLLATE "C" NOT NULL,
        member_key TEXT COLLATE "C" NOT NULL,
        attribute  TEXT COLLATE "C" NOT NULL,
        value      TEXT NOT NULL,
        PRIMARY KEY (sync_id, member_key, attribute)
      );

      CREATE TABLE staging_checkpoints (
        run_id         TEXT COLLATE "C" PRIMARY KEY,
        rows_consumed  BIGINT NOT NULL,
        bytes_consumed BIGINT NOT NULL
      );

      CREATE TABLE staged_members (
        run_id       TEXT COLLATE "C" NOT NULL,
        member_key   TEXT COLLATE "C" NOT NULL,
        amplitude_id TEXT NOT NULL,
        user_id      TEXT,
        device_id    TEXT,
        props        TEXT,
        PRIMARY KEY (run_id, member_key)
      );

      CREATE TABLE runs (
        run_id         TEXT COLLATE "C" PRIMARY KEY,
        sync_id        TEXT COLLATE "C" NOT NULL,
        kind           TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
        started_at     TIMESTAMPTZ NOT NULL,
        finished_at    TIMESTAMPTZ,
        source_version TEXT,
        stats          TEXT
      );
      CREATE INDEX runs_by_start ON runs (started_at);
      CREATE INDEX runs_by_sync_start ON runs (sync_id, started_at);
      CREATE INDEX runs_succeeded_by_sync ON runs (sync_id, finished_at) WHERE status = 'succeeded';

      CREATE TABLE data_points (
        run_id   TEXT COLLATE "C" NOT NULL,
        page_key TEXT COLLATE "C" NOT NULL,
        day      TEXT COLLATE "C" NOT NULL,
        sync_id  TEXT COLLATE "C" NOT NULL,
        points   BIGINT NOT NULL CHECK (points >= 0),
        PRIMARY KEY (run_id, page_key)
      );
      CREATE INDEX data_points_by_day ON data_points (day, sync_id);

      CREATE TABLE cohort_downloads (
        run_id      TEXT COLLATE "C" NOT NULL,
        cohort_id   TEXT COLLATE "C" NOT NULL,
        month       TEXT COLLATE "C" NOT NULL,
        reserved_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (run_id, cohort_id)
      );
      CREATE INDEX cohort_downloads_by_month ON cohort_downloads (month);

      CREATE TABLE member_failures (
        run_id     TEXT COLLATE "C" NOT NULL,
        member_key TEXT COLLATE "C" NOT NULL,
        reason     TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (run_id, member_key)
      );
      CREATE INDEX member_failures_by_reason ON member_failures (run_id, reason);
    `,
  },
  {
    version: 2,
    name: 'vendor rate limits shared by every worker',
    sql: `
      CREATE TABLE rate_windows (
        limiter_key TEXT PRIMARY KEY,
        window_start_ms INTEGER NOT NULL,
        used INTEGER NOT NULL,
        -- The vendor said the workspace is exhausted (other integrations share it): nobody sends before this.
        blocked_until_ms INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;
    `,
    postgres: `
      CREATE TABLE rate_windows (
        limiter_key TEXT COLLATE "C" PRIMARY KEY,
        window_start_ms BIGINT NOT NULL,
        used BIGINT NOT NULL,
        blocked_until_ms BIGINT NOT NULL DEFAULT 0
      );
    `,
  },
  {
    version: 3,
    name: 'outcome of each vendor request in a run',
    sql: `
      -- One row per request a run's pages sent: a retried page attempt reads back what earlier attempts achieved.
      CREATE TABLE request_outcomes (
        run_id TEXT NOT NULL,
        request_key TEXT NOT NULL,
        accepted INTEGER NOT NULL,
        rejected INTEGER NOT NULL,
        data_points INTEGER NOT NULL,
        PRIMARY KEY (run_id, request_key)
      ) WITHOUT ROWID;
    `,
    postgres: `
      CREATE TABLE request_outcomes (
        run_id TEXT COLLATE "C" NOT NULL,
        request_key TEXT COLLATE "C" NOT NULL,
        accepted BIGINT NOT NULL,
        rejected BIGINT NOT NULL,
        data_points BIGINT NOT NULL,
        PRIMARY KEY (run_id, request_key)
      );
    `,
  },
  {
    version: 4,
    name: 'device ids of Amplitude users',
    sql: `
      -- What Amplitude's User Activity API (360 lookups per hour) answered, so no user is looked up twice.
      -- device_id NULL: Amplitude knows no device for that user.
      CREATE TABLE amplitude_device_ids (
        amplitude_id TEXT PRIMARY KEY,
        device_id TEXT,
        looked_up_at TEXT NOT NULL
      ) WITHOUT ROWID;
    `,
    postgres: `
      CREATE TABLE amplitude_device_ids (
        amplitude_id TEXT COLLATE "C" PRIMARY KEY,
        device_id TEXT,
        looked_up_at TIMESTAMPTZ NOT NULL
      );
    `,
  },
  {
    version: 5,
    name: 'per-sync leases and planned pages',
    sql: `
      -- One run per sync at a time, whatever its workflow id; an expired lease may be taken by another run.
      CREATE TABLE sync_leases (
        sync_id TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;

      -- A request is recorded before it is sent (completed = 0) and again with what it did (completed = 1).
      ALTER TABLE request_outcomes ADD COLUMN completed INTEGER NOT NULL DEFAULT 1;

      -- The last key of each planned page of a run's diff: pages are applied by number, several at once.
      CREATE TABLE plan_pages (
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('enter', 'leave')),
        page_no INTEGER NOT NULL,
        through_key TEXT NOT NULL,
        PRIMARY KEY (run_id, kind, page_no)
      ) WITHOUT ROWID;
    `,
    postgres: `
      CREATE TABLE sync_leases (
        sync_id TEXT COLLATE "C" PRIMARY KEY,
        holder TEXT COLLATE "C" NOT NULL,
        workflow_id TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL
      );

      ALTER TABLE request_outcomes ADD COLUMN completed BOOLEAN NOT NULL DEFAULT true;

      -- What the last acquisition got, set by the same UPDATE that takes the slots (one statement, no round trip
      -- while the row is locked).
      ALTER TABLE rate_windows ADD COLUMN last_granted BIGINT NOT NULL DEFAULT 0;

      CREATE TABLE plan_pages (
        run_id TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('enter', 'leave')),
        page_no INTEGER NOT NULL,
        through_key TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (run_id, kind, page_no)
      );
    `,
  },
  {
    version: 6,
    name: 'event pipeline: activity index, staged events, sent-event ledger',
    sql: `
      -- Who is active, and their latest user properties: both from the user's latest event by event time.
      CREATE TABLE user_activity (
        user_key TEXT PRIMARY KEY,
        last_event_ms INTEGER NOT NULL,
        properties TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX user_activity_by_time ON user_activity (last_event_ms);

      -- The events of a run to forward to Braze: the Braze event object, keyed by the Amplitude event.
      CREATE TABLE staged_events (
        run_id TEXT NOT NULL,
        event_key TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, event_key)
      ) WITHOUT ROWID;

      -- Every event that may have reached Braze (claimed just before its request goes), whatever run sent it:
      -- Braze does not deduplicate, so an event in here is never sent again.
      CREATE TABLE sent_events (
        event_key TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        request_key TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX sent_events_by_request ON sent_events (run_id, request_key);
      CREATE INDEX sent_events_by_time ON sent_events (sent_at_ms);

      -- Planned pages of events too: the kind check is rebuilt (SQLite cannot alter it), keeping pages in flight.
      CREATE TABLE plan_pages_v6 (
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('enter', 'leave', 'event')),
        page_no INTEGER NOT NULL,
        through_key TEXT NOT NULL,
        PRIMARY KEY (run_id, kind, page_no)
      ) WITHOUT ROWID;
      INSERT INTO plan_pages_v6 SELECT run_id, kind, page_no, through_key FROM plan_pages;
      DROP TABLE plan_pages;
      ALTER TABLE plan_pages_v6 RENAME TO plan_pages;
    `,
    postgres: `
      CREATE TABLE user_activity (
        user_key TEXT COLLATE "C" PRIMARY KEY,
        last_event_ms BIGINT NOT NULL,
        properties TEXT NOT NULL
      );
      CREATE INDEX user_activity_by_time ON user_activity (last_event_ms);

      CREATE TABLE staged_events (
        run_id TEXT COLLATE "C" NOT NULL,
        event_key TEXT COLLATE "C" NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, event_key)
      );

      CREATE TABLE sent_events (
        event_key TEXT COLLATE "C" PRIMARY KEY,
        run_id TEXT COLLATE "C" NOT NULL,
        request_key TEXT COLLATE "C" NOT NULL,
        sent_at_ms BIGINT NOT NULL
      );
      CREATE INDEX sent_events_by_request ON sent_events (run_id, request_key);
      CREATE INDEX sent_events_by_time ON sent_events (sent_at_ms);

      ALTER TABLE plan_pages DROP CONSTRAINT plan_pages_kind_check;
      ALTER TABLE plan_pages ADD CONSTRAINT plan_pages_kind_check CHECK (kind IN ('enter', 'leave', 'event'));
    `,
  },
  {
    version: 7,
    name: 'trait pipeline: staged attribute changes, attribute snapshots per Braze workspace',
    sql: `
      -- Each user's attribute changes of a run (JSON: Braze attribute name -> value, null unsets), keyed like user_activity.
      CREATE TABLE staged_traits (
        run_id TEXT NOT NULL,
        user_key TEXT NOT NULL,
        changes TEXT NOT NULL,
        PRIMARY KEY (run_id, user_key)
      ) WITHOUT ROWID;

      -- The last source key a keyset-paged source (such as the activity index) has consumed; NULL for other sources.
      ALTER TABLE staging_checkpoints ADD COLUMN after_key TEXT;

      -- attribute_snapshots.sync_id now holds a scope, the Braze workspace (e.g. 'braze-workspace:ab12cd'): every sync
      -- writing to a workspace shares its users' last accepted values. member_key is the activity index's user_key, so
      -- pruning a user deletes their rows in every scope through this index.
      CREATE INDEX attribute_snapshots_by_member ON attribute_snapshots (member_key);

      -- Whether a kind still runs (the trait sync reads the activity index the event sync feeds).
      CREATE INDEX runs_succeeded_by_kind ON runs (kind, finished_at) WHERE status = 'succeeded';

      -- Planned pages of trait changes too: the kind check is rebuilt again, keeping pages in flight.
      CREATE TABLE plan_pages_v7 (
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('enter', 'leave', 'event', 'trait')),
        page_no INTEGER NOT NULL,
        through_key TEXT NOT NULL,
        PRIMARY KEY (run_id, kind, page_no)
      ) WITHOUT ROWID;
      INSERT INTO plan_pages_v7 SELECT run_id, kind, page_no, through_key FROM plan_pages;
      DROP TABLE plan_pages;
      ALTER TABLE plan_pages_v7 RENAME TO plan_pages;
    `,
    postgres: `
      CREATE TABLE staged_traits (
        run_id TEXT COLLATE "C" NOT NULL,
        user_key TEXT COLLATE "C" NOT NULL,
        changes TEXT NOT NULL,
        PRIMARY KEY (run_id, user_key)
      );

      ALTER TABLE staging_checkpoints ADD COLUMN after_key TEXT COLLATE "C";

      CREATE INDEX attribute_snapshots_by_member ON attribute_snapshots (member_key);

      CREATE INDEX runs_succeeded_by_kind ON runs (kind, finished_at) WHERE status = 'succeeded';

      ALTER TABLE plan_pages DROP CONSTRAINT plan_pages_kind_check;
      ALTER TABLE plan_pages ADD CONSTRAINT plan_pages_kind_check CHECK (kind IN ('enter', 'leave', 'event', 'trait'));
    `,
  },
  {
    version: 8,
    name: 'profile fetches of trait syncs',
    sql: `
      -- What each trait sync fetched from Amplitude's User Profile API per user, and when (JSON values): the API allows
      -- 600 requests a minute for a whole organisation, so a pass over a large audience spans runs, and a run fetches
      -- only users with new activity and the stalest. user_key is the activity index's.
      CREATE TABLE profile_fetches (
        sync_id TEXT NOT NULL,
        user_key TEXT NOT NULL,
        fetched_at_ms INTEGER NOT NULL,
        "values" TEXT NOT NULL,
        PRIMARY KEY (sync_id, user_key)
      ) WITHOUT ROWID;
      -- A sync's fetches stalest first, in the queue's order.
      CREATE INDEX profile_fetches_by_time ON profile_fetches (sync_id, fetched_at_ms, user_key);
      -- Pruning a user deletes their fetches of every sync through this index.
      CREATE INDEX profile_fetches_by_user ON profile_fetches (user_key);
    `,
    postgres: `
      CREATE TABLE profile_fetches (
        sync_id TEXT COLLATE "C" NOT NULL,
        user_key TEXT COLLATE "C" NOT NULL,
        fetched_at_ms BIGINT NOT NULL,
        "values" TEXT NOT NULL,
        PRIMARY KEY (sync_id, user_key)
      );
      CREATE INDEX profile_fetches_by_time ON profile_fetches (sync_id, fetched_at_ms, user_key);
      CREATE INDEX profile_fetches_by_user ON profile_fetches (user_key);
    `,
  },
  {
    version: 9,
    name: 'attribute snapshots: one row per user and Braze workspace',
    sql: `
      -- The attribute snapshot, one row per user and scope (the Braze workspace): a JSON object of attribute -> the
      -- JSON text of the value Braze last accepted. A request Braze accepted writes one row per user it carried, not
      -- one per attribute into two indexes. Writes merge a patch (a null removes the attribute); readers skip nulls,
      -- which a patch for a user without a row can leave. Keyed by user first: pruning a user walks the key itself.
      CREATE TABLE user_attribute_snapshots (
        member_key TEXT NOT NULL,
        scope TEXT NOT NULL,
        attributes TEXT NOT NULL,
        PRIMARY KEY (member_key, scope)
      ) WITHOUT ROWID;
      INSERT INTO user_attribute_snapshots (member_key, scope, attributes)
        SELECT member_key, sync_id, json_group_object(attribute, value) FROM attribute_snapshots GROUP BY member_key, sync_id;
      DROP TABLE attribute_snapshots;
    `,
    postgres: `
      CREATE TABLE user_attribute_snapshots (
        member_key TEXT COLLATE "C" NOT NULL,
        scope TEXT COLLATE "C" NOT NULL,
        attributes JSONB NOT NULL,
        PRIMARY KEY (member_key, scope)
      );
      INSERT INTO user_attribute_snapshots (member_key, scope, attributes)
        SELECT member_key, sync_id, jsonb_object_agg(attribute, value) FROM attribute_snapshots GROUP BY member_key, sync_id;
      DROP TABLE attribute_snapshots;
    `,
  },
  {
    version: 10,
    name: 'ingress spool and dead letters',
    sql: `
      -- What the receiver acknowledged (Currents events, cohort webhook batches), per stream: kept until processed and
      -- then for a horizon, so that a redelivery is recognised at the door. A throttled partition's items wait until
      -- not_before_ms; items of one partition are processed in seq order.
      CREATE TABLE ingress_spool (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stream TEXT NOT NULL,
        dedupe_key TEXT NOT NULL,
        partition_key TEXT NOT NULL,
        received_at_ms INTEGER NOT NULL,
        body TEXT NOT NULL,
        not_before_ms INTEGER NOT NULL DEFAULT 0,
        done_at_ms INTEGER,
        UNIQUE (stream, dedupe_key)
      );
      CREATE INDEX ingress_spool_pending ON ingress_spool (stream, seq) WHERE done_at_ms IS NULL;
      CREATE INDEX ingress_spool_pending_by_partition ON ingress_spool (stream, partition_key, seq) WHERE done_at_ms IS NULL;
      CREATE INDEX ingress_spool_done ON ingress_spool (done_at_ms) WHERE done_at_ms IS NOT NULL;

      -- Items that cannot be processed (malformed at the door, or refused by the vendor), with the reason.
      CREATE TABLE ingress_dead_letters (
        stream TEXT NOT NULL,
        dedupe_key TEXT NOT NULL,
        reason TEXT NOT NULL,
        body TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (stream, dedupe_key)
      ) WITHOUT ROWID;
    `,
    postgres: `
      CREATE TABLE ingress_spool (
        seq BIGSERIAL PRIMARY KEY,
        stream TEXT COLLATE "C" NOT NULL,
        dedupe_key TEXT COLLATE "C" NOT NULL,
        partition_key TEXT COLLATE "C" NOT NULL,
        received_at_ms BIGINT NOT NULL,
        body TEXT NOT NULL,
        not_before_ms BIGINT NOT NULL DEFAULT 0,
        done_at_ms BIGINT,
        UNIQUE (stream, dedupe_key)
      );
      CREATE INDEX ingress_spool_pending ON ingress_spool (stream, seq) WHERE done_at_ms IS NULL;
      CREATE INDEX ingress_spool_pending_by_partition ON ingress_spool (stream, partition_key, seq) WHERE done_at_ms IS NULL;
      CREATE INDEX ingress_spool_done ON ingress_spool (done_at_ms) WHERE done_at_ms IS NOT NULL;

      CREATE TABLE ingress_dead_letters (
        stream TEXT COLLATE "C" NOT NULL,
        dedupe_key TEXT COLLATE "C" NOT NULL,
        reason TEXT NOT NULL,
        body TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (stream, dedupe_key)
      );
    `,
  },
  {
    version: 11,
    name: 'membership marks: when the latest membership change of each member was computed',
    sql: `
      -- Per sync and member, the computed_time (epoch seconds) of the newest cohort webhook change applied: an older
      -- change arriving late is superseded, whatever order batches come in.
      CREATE TABLE membership_marks (
        sync_id TEXT NOT NULL,
        member_key TEXT NOT NULL,
        computed_time INTEGER NOT NULL,
        PRIMARY KEY (sync_id, member_key)
      ) WITHOUT ROWID;
    `,
    postgres: `
      CREATE TABLE membership_marks (
        sync_id TEXT COLLATE "C" NOT NULL,
        member_key TEXT COLLATE "C" NOT NULL,
        computed_time BIGINT NOT NULL,
        PRIMARY KEY (sync_id, member_key)
      );
    `,
  },
  {
    version: 12,
    name: 'sync leases say whether they are held for a run or for one round',
    sql: `
      -- 'round': a cohort stream's short hold, which other runs of the sync wait for instead of skipping.
      ALTER TABLE sync_leases ADD COLUMN hold TEXT NOT NULL DEFAULT 'run' CHECK (hold IN ('run', 'round'));
    `,
    postgres: `
      ALTER TABLE sync_leases ADD COLUMN hold TEXT NOT NULL DEFAULT 'run' CHECK (hold IN ('run', 'round'));
    `,
  },
  {
    version: 13,
    name: 'replayable dead letters; rate windows that adopt what the vendor reports',
    sql: `
      -- Set for an item that was spooled (replayed into the spool as it was); null for what the door refused
      -- (replayed through the door again).
      ALTER TABLE ingress_dead_letters ADD COLUMN partition_key TEXT;
      CREATE INDEX ingress_dead_letters_by_time ON ingress_dead_letters (at_ms, stream, dedupe_key);

      -- What the vendor's own rate-limit headers said: its limit per window (other contracts, other writers), and
      -- how many requests the current window may grant in all, from its Remaining (reset when the window moves).
      ALTER TABLE rate_windows ADD COLUMN vendor_limit INTEGER;
      ALTER TABLE rate_windows ADD COLUMN window_cap INTEGER;
    `,
    postgres: `
      ALTER TABLE ingress_dead_letters ADD COLUMN partition_key TEXT COLLATE "C";
      CREATE INDEX ingress_dead_letters_by_time ON ingress_dead_letters (at_ms, stream, dedupe_key);

      ALTER TABLE rate_windows ADD COLUMN vendor_limit BIGINT;
      ALTER TABLE rate_windows ADD COLUMN window_cap BIGINT;
    `,
  },
  {
    version: 14,
    name: 'one rate-window statement for both stores',
    sql: `
      -- What the last acquisition got, set by the same UPDATE that takes the slots (src/store/rate-windows/rule.ts).
      ALTER TABLE rate_windows ADD COLUMN last_granted INTEGER NOT NULL DEFAULT 0;
    `,
    // PostgreSQL has had it since version 7.
    postgres: `-- nothing to change`,
  },
  {
    version: 15,
    name: 'stream settings: what a stream the receiver wakes runs with',
    sql: `
      CREATE TABLE stream_settings (
        stream        TEXT PRIMARY KEY,
        settings      TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL
      );
    `,
    postgres: `
      CREATE TABLE stream_settings (
        stream        TEXT COLLATE "C" PRIMARY KEY,
        settings      TEXT NOT NULL,
        updated_at_ms BIGINT NOT NULL
      );
    `,
  },
  {
    version: 16,
    name: 'profiles kept for Connected Content, and warm-up audiences',
    sql: `
      -- Amplitude User Profile API answers (NULL: a user Amplitude had not seen), shared by every reader.
      CREATE TABLE amplitude_profiles (
        user_key      TEXT PRIMARY KEY,
        fetched_at_ms INTEGER NOT NULL,
        user_data     TEXT
      ) WITHOUT ROWID;
      -- The users a warm-up refreshes, read newest activity first (-1: not in the activity index). A page ends at a
      -- (last_event_ms, seq) pair: numbers only, so a workflow can carry where it is without naming a user.
      CREATE TABLE profile_audiences (
        seq           INTEGER PRIMARY KEY,
        audience_id   TEXT NOT NULL,
        user_key      TEXT NOT NULL,
        last_event_ms INTEGER NOT NULL,
        UNIQUE (audience_id, user_key)
      );
      CREATE INDEX profile_audiences_by_activity ON profile_audiences (audience_id, last_event_ms, seq);
    `,
    postgres: `
      CREATE TABLE amplitude_profiles (
        user_key      TEXT COLLATE "C" PRIMARY KEY,
        fetched_at_ms BIGINT NOT NULL,
        user_data     TEXT
      );
      CREATE TABLE profile_audiences (
        seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        audience_id   TEXT COLLATE "C" NOT NULL,
        user_key      TEXT COLLATE "C" NOT NULL,
        last_event_ms BIGINT NOT NULL,
        UNIQUE (audience_id, user_key)
      );
      CREATE INDEX profile_audiences_by_activity ON profile_audiences (audience_id, last_event_ms, seq);
    `,
  },
  {
    version: 17,
    name: 'erasure and identity: the suppression list, the ids seen together, the erasures done, the aliases written',
    sql: `
      -- Users erased and never to be sent again, by a keyed one-way hash of each id (\`user_id:…\`, \`device_id:…\`,
      -- \`amplitude_id:…\`), so the erased id is stored nowhere. key_fingerprint names the key that made the hash: a
      -- worker with another key would miss every entry, and must refuse to run instead. A lifted entry stays, recorded.
      CREATE TABLE suppressions (
        id_hash         TEXT PRIMARY KEY,
        key_fingerprint TEXT NOT NULL,
        erased_at_ms    INTEGER NOT NULL,
        lifted_at_ms    INTEGER
      ) WITHOUT ROWID;
      -- Active entries per key, rewritten with every change to the list: what every sync and lookup reads first (nothing
      -- to check while it is empty; a key that is not the worker's is refused), in one row instead of a count.
      CREATE TABLE suppression_keys (
        key_fingerprint TEXT PRIMARY KEY,
        active          INTEGER NOT NULL
      );
      -- Which user and device ids the product has seen with each Amplitude id (Amplitude's deletion jobs list Amplitude
      -- ids only); kept for the activity window, like the activity index. last_seen_ms moves by the hour at most (every
      -- event rewriting it would double an hour's ingestion), and pruning reads the table whole, once an hour.
      CREATE TABLE amplitude_identities (
        amplitude_id TEXT NOT NULL,
        user_key     TEXT NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        PRIMARY KEY (amplitude_id, user_key)
      ) WITHOUT ROWID;
      CREATE INDEX amplitude_identities_by_user ON amplitude_identities (user_key);
      -- Every erasure and lifted suppression: what it removed where (counts only), so an operator can show it was done.
      -- A deletion job of Amplitude's is recorded by its day and a hash of its ids, so a rerun forgets it once.
      CREATE TABLE erasures (
        erasure_key TEXT PRIMARY KEY,
        at_ms       INTEGER NOT NULL,
        source      TEXT NOT NULL,
        summary     TEXT NOT NULL
      );
      -- The user aliases the product has written to in Braze (anonymous users, by device or Amplitude id), and whether
      -- each was identified to the external id that later appeared with that id: 'pending' once seen, claimed by one
      -- worker at a time (claimed_until_ms), then 'identified' (or 'refused', with Braze's reason). Erasable.
      CREATE TABLE braze_aliases (
        alias_name       TEXT NOT NULL,
        alias_label      TEXT NOT NULL,
        state            TEXT NOT NULL CHECK (state IN ('written', 'pending', 'identified', 'refused')),
        external_id      TEXT,
        reason           TEXT,
        claimed_until_ms INTEGER NOT NULL DEFAULT 0,
        updated_at_ms    INTEGER NOT NULL,
        PRIMARY KEY (alias_name, alias_label)
      ) WITHOUT ROWID;
      CREATE INDEX braze_aliases_pending ON braze_aliases (claimed_until_ms) WHERE state = 'pending';
      -- Who an erasure started from the command line or the client API is about, until it is done: the workflow
      -- carries the request's id, never the ids it names, and the erasure deletes the row.
      CREATE TABLE erasure_requests (
        request_id TEXT PRIMARY KEY,
        identities TEXT NOT NULL,
        at_ms      INTEGER NOT NULL
      );
    `,
    postgres: `
      CREATE TABLE suppressions (
        id_hash         TEXT COLLATE "C" PRIMARY KEY,
        key_fingerprint TEXT NOT NULL,
        erased_at_ms    BIGINT NOT NULL,
        lifted_at_ms    BIGINT
      );
      CREATE TABLE suppression_keys (
        key_fingerprint TEXT COLLATE "C" PRIMARY KEY,
        active          BIGINT NOT NULL
      );
      CREATE TABLE amplitude_identities (
        amplitude_id TEXT COLLATE "C" NOT NULL,
        user_key     TEXT COLLATE "C" NOT NULL,
        last_seen_ms BIGINT NOT NULL,
        PRIMARY KEY (amplitude_id, user_key)
      );
      CREATE INDEX amplitude_identities_by_user ON amplitude_identities (user_key);
      CREATE TABLE erasures (
        erasure_key TEXT COLLATE "C" PRIMARY KEY,
        at_ms       BIGINT NOT NULL,
        source      TEXT NOT NULL,
        summary     TEXT NOT NULL
      );
      CREATE TABLE braze_aliases (
        alias_name       TEXT COLLATE "C" NOT NULL,
        alias_label      TEXT COLLATE "C" NOT NULL,
        state            TEXT NOT NULL CHECK (state IN ('written', 'pending', 'identified', 'refused')),
        external_id      TEXT,
        reason           TEXT,
        claimed_until_ms BIGINT NOT NULL DEFAULT 0,
        updated_at_ms    BIGINT NOT NULL,
        PRIMARY KEY (alias_name, alias_label)
      );
      CREATE INDEX braze_aliases_pending ON braze_aliases (claimed_until_ms) WHERE state = 'pending';
      CREATE TABLE erasure_requests (
        request_id TEXT COLLATE "C" PRIMARY KEY,
        identities TEXT NOT NULL,
        at_ms      BIGINT NOT NULL
      );
    `,
  },
  {
    version: 18,
    name: 'usage counts: vendor answers and rows staged and sent, per day',
    sql: `
      -- labels: the count's labels as JSON with sorted keys, e.g. {"endpoint":"POST /users/track","status":"429","vendor":"braze"}.
      CREATE TABLE usage_counts (
        day    TEXT NOT NULL,
        metric TEXT NOT NULL,
        labels TEXT NOT NULL,
        count  INTEGER NOT NULL,
        PRIMARY KEY (day, metric, labels)
      ) WITHOUT ROWID;
    `,
    postgres: `
      CREATE TABLE usage_counts (
        day    TEXT COLLATE "C" NOT NULL,
        metric TEXT COLLATE "C" NOT NULL,
        labels TEXT COLLATE "C" NOT NULL,
        count  BIGINT NOT NULL,
        PRIMARY KEY (day, metric, labels)
      );
    `,
  },
];

export function currentSchemaVersion(db: Database): number {
  const row = db.prepare<[], { version: number | null }>('SELECT max(version) AS version FROM schema_migrations').get();
  return row?.version ?? 0;
}

/** Throws unless versions increase; returns the latest version the list knows. */
export function latestVersionOf(migrations: readonly Migration[]): number {
  migrations.forEach((migration, index) => {
    const previous = migrations[index - 1];
    if (previous && migration.version <= previous.version) {
      throw new Error(`Migrations must be in increasing version order: ${migration.version} follows ${previous.version}`);
    }
  });
  return migrations.at(-1)?.version ?? 0;
}

/** Refuses to run against a schema this build does not know. */
export function requireKnownSchema(existing: number, latestKnown: number): void {
  if (existing > latestKnown) {
    throw new Error(
      `The state store has schema version ${existing}, newer than this build knows (${latestKnown}): upgrade amplitude-braze-sync`,
    );
  }
}

/** Applies the migrations the database has not seen yet and returns their versions. */
export function applyMigrations(db: Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  const latestKnown = latestVersionOf(migrations);
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  requireKnownSchema(currentSchemaVersion(db), latestKnown);

  const isApplied = db.prepare<[number], { version: number }>('SELECT version FROM schema_migrations WHERE version = ?');
  const record = db.prepare<[number, string, string]>('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const applied: number[] = [];
  for (const migration of migrations) {
    // IMMEDIATE takes the write lock first, so two processes opening the same file cannot both apply it.
    db.transaction(() => {
      if (isApplied.get(migration.version)) return;
      db.exec(migration.sql);
      record.run(migration.version, migration.name, new Date().toISOString());
      applied.push(migration.version);
    }).immediate();
  }
  return applied;
}
