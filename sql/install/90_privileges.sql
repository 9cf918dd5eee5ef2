-- ---------------------------------------------------------------------------
-- Privileges and dump support.
-- Loading functions read server files or call AWS with the server's
-- credentials: nobody but the owner (a superuser) may run them unless granted.
-- ---------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA billops FROM PUBLIC;
REVOKE ALL ON PROCEDURE billops.sync_cur_source(text, date, boolean) FROM PUBLIC;
REVOKE ALL ON PROCEDURE billops._sync_source(text, date, boolean, integer, integer, integer, jsonb) FROM PUBLIC;
REVOKE ALL ON PROCEDURE billops.run_monthly_cycle(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billops.credentials_reference_valid(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION billops.tag_key_canonical(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION billops.focus_version_of(text[]), billops.focus_metadata(text), billops._focus_key_value(jsonb) TO PUBLIC;
-- used by CHECK constraints of tables admins write
GRANT EXECUTE ON FUNCTION billops._is_period(date) TO PUBLIC;

-- configuration and history are user data: pg_dump must keep them
SELECT pg_catalog.pg_extension_config_dump('billops.cur_source', '');
SELECT pg_catalog.pg_extension_config_dump('billops.focus_service_category', '');
SELECT pg_catalog.pg_extension_config_dump('billops.cur_delivery', '');
SELECT pg_catalog.pg_extension_config_dump('billops.cur_delivery_file', '');
SELECT pg_catalog.pg_extension_config_dump('billops.cur_delivery_partition', '');
SELECT pg_catalog.pg_extension_config_dump('billops.cur_partition', '');
-- the monthly rollup of the visible deliveries (their line items and daily rollups are tables of their own)
SELECT pg_catalog.pg_extension_config_dump('billops.cur_monthly', '');
-- the map keys each delivery holds: rules read every spelling of a tag key from here
SELECT pg_catalog.pg_extension_config_dump('billops.cur_delivery_map_key', '');
