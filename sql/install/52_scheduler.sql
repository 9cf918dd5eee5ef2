-- ---------------------------------------------------------------------------
-- The monthly cadence: check for new CUR deliveries, ingest, classify, route,
-- then AWS invoices, anomalies, daily spend and spend signals;
-- the outbox then pushes to BILL on commit.  One procedure, friendly to
-- pg_cron:
--   SELECT cron.schedule('billops-cycle', '17 * * * *', 'CALL billops.run_monthly_cycle()');
-- Every run is a row in billops.job_run (duration, per-source results,
-- errors), kept for job_run_retention_days.
-- ---------------------------------------------------------------------------

INSERT INTO billops.setting (name, value, value_type, description) VALUES
  ('job_run_retention_days', '90', 'numeric', 'How long billops.job_run keeps finished runs.');

CREATE TABLE billops.job_run (
    run_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job          text NOT NULL,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    duration_ms  double precision,
    detail       jsonb NOT NULL DEFAULT '{}',
    errors       jsonb NOT NULL DEFAULT '[]',
    started_by   name NOT NULL DEFAULT current_user,
    backend_pid  integer NOT NULL DEFAULT pg_backend_pid()
);
CREATE INDEX ON billops.job_run (started_at);
COMMENT ON TABLE billops.job_run IS
  'Every run of the monthly cycle: when, how long, what each source loaded, what the build did, and every error.';

CREATE PROCEDURE billops.run_monthly_cycle(only_source text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    run      bigint;
    src      record;
    loaded   integer; failed integer; current integer; err jsonb;
    run_sources jsonb := '[]';
    run_errors  jsonb := '[]';
    built    jsonb;
    fetched  record;          -- a billops.aws_fetch_result
    run_fetches jsonb := '[]';
    new_signals bigint;
BEGIN
    -- a run whose session died is not running any more; old runs go
    UPDATE billops.job_run j SET status = 'failed', finished_at = clock_timestamp(),
           errors = j.errors || jsonb_build_array(jsonb_build_object('message', 'the session ended before the run finished'))
     WHERE j.status = 'running'
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_stat_activity a
                        WHERE a.pid = j.backend_pid AND a.backend_start <= j.started_at);
    DELETE FROM billops.job_run j
     WHERE j.started_at < now() - make_interval(days => billops.setting_value('job_run_retention_days')::int);
    INSERT INTO billops.job_run (job, detail) VALUES ('monthly_cycle', jsonb_build_object('only_source', only_source))
    RETURNING run_id INTO run;
    COMMIT;

    -- 1. ingest: each source on its own; one failing source does not stop the others
    FOR src IN SELECT s.name FROM billops.cur_source s
                WHERE s.enabled AND s.storage = 's3' AND (only_source IS NULL OR s.name = only_source)
                ORDER BY s.name LOOP
        CALL billops._sync_source(src.name, NULL, false, loaded, failed, current, err);
        run_sources := run_sources || jsonb_build_object('source', src.name, 'loaded', loaded, 'current', current, 'failed', failed);
        IF err IS NOT NULL THEN
            run_errors := run_errors || (err || jsonb_build_object('step', 'sync', 'source', src.name));
        END IF;
    END LOOP;

    -- 2. classify, build, route (the outbox rows it writes wake the BILL worker at commit)
    BEGIN
        SELECT coalesce(jsonb_object_agg(b.action, b.n), '{}') INTO built
          FROM (SELECT x.action, count(*) AS n FROM billops.build_payables() x GROUP BY 1) b;
    EXCEPTION WHEN OTHERS THEN
        run_errors := run_errors || jsonb_build_object('step', 'build_payables', 'sqlstate', SQLSTATE, 'message', SQLERRM);
    END;

    -- 3. AWS's billing APIs per payer: last month's invoices (their PDFs go onto the payables just
    --    built), anomalies, and Cost Explorer's daily spend (cached and capped), then detection.
    --    A fetch that fails or hits the cap says so in its result; failures count as errors.
    FOR src IN SELECT a.payer_account_id AS payer FROM billops.aws_api_source a WHERE a.enabled ORDER BY 1 LOOP
        FOR fetched IN SELECT * FROM billops.fetch_aws_invoices(src.payer)
                       UNION ALL SELECT * FROM billops.fetch_ce_anomalies(src.payer)
                       UNION ALL SELECT * FROM billops.fetch_ce_daily_spend(src.payer) LOOP
            run_fetches := run_fetches || jsonb_build_object('payer', fetched.payer_account_id, 'operation', fetched.operation,
                                                             'status', fetched.status, 'calls', fetched.calls,
                                                             'billed_usd', fetched.billed_usd, 'items', fetched.items);
            IF fetched.status = 'failed' THEN
                run_errors := run_errors || jsonb_build_object('step', fetched.operation, 'payer', fetched.payer_account_id,
                                                               'sqlstate', fetched.sqlstate, 'message', fetched.message);
            END IF;
        END LOOP;
    END LOOP;
    BEGIN
        SELECT count(*) FILTER (WHERE x.is_new) INTO new_signals FROM billops.detect_spend_signals() x;
    EXCEPTION WHEN OTHERS THEN
        run_errors := run_errors || jsonb_build_object('step', 'detect_spend_signals', 'sqlstate', SQLSTATE, 'message', SQLERRM);
    END;

    UPDATE billops.job_run j SET
           status = CASE WHEN jsonb_array_length(run_errors) = 0 THEN 'succeeded' ELSE 'failed' END,
           finished_at = clock_timestamp(),
           duration_ms = extract(epoch FROM clock_timestamp() - j.started_at) * 1000,
           detail = j.detail || jsonb_build_object('sources', run_sources, 'payables', coalesce(built, '{}'),
                                                   'aws_api', run_fetches, 'new_signals', new_signals,
                                                   'outbox_pending', (SELECT count(*) FROM billops.bill_outbox o
                                                                       WHERE o.state = 'pending')),
           errors = run_errors
     WHERE j.run_id = run;
    COMMIT;
    IF jsonb_array_length(run_errors) > 0 THEN
        RAISE WARNING 'billops: monthly cycle run % finished with % error(s): %', run, jsonb_array_length(run_errors),
              run_errors->0->>'message'
              USING HINT = format('SELECT errors FROM billops.job_run WHERE run_id = %s', run);
    END IF;
END
$$;
COMMENT ON PROCEDURE billops.run_monthly_cycle(text) IS
  'Syncs every enabled S3 source, builds and routes payables (the outbox pushes to BILL), fetches AWS invoices, anomalies and daily spend, detects spend signals; one billops.job_run row per run.';
