# pg_billops — PGXS build.
#
#   make                 build the module and the install script
#   make install         install into the server found by pg_config
#   make installcheck    pg_regress against a running server (PGHOST/PGPORT)
#   make bench           benchmarks (test/bench/run.sh, parquet.sh, bill.sh); print name=value lines
#   make bench-scale     cost growth with the size of a month, and a year of months (test/bench/scale.sh)
#   make crash-matrix    1,000 crash and lost-answer trials of the BILL protocol (test/bench/bill-crash-matrix.sh)
#
# The install script is generated: the SQL sources live one domain per file in
# sql/install/ and are concatenated in name order into sql/pg_billops--<ver>.sql.
# Upgrade scripts (sql/pg_billops--A--B.sql) are written by hand and shipped as-is.

EXTENSION  = pg_billops
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" pg_billops.control)

MODULE_big = pg_billops
OBJS = \
	src/pg_billops.o \
	src/governance.o \
	src/sigv4.o \
	src/xml_value.o \
	src/aws_credentials.o \
	src/aws_sts.o \
	src/aws_metadata.o \
	src/aws_endpoint.o \
	src/aws_credential_process.o \
	src/parquet_thrift.o \
	src/parquet_encoding.o \
	src/parquet_codec.o \
	src/parquet_page.o \
	src/parquet_rows.o \
	src/parquet_source.o \
	src/ini_file.o \
	src/bill_credentials.o \
	src/bill_webhook.o \
	src/bill_client.o \
	src/bill_worker.o \
	src/bill_lanes.o \
	src/bill_shared.o \
	src/http.o \
	src/json_value.o \
	src/json_map.o \
	src/byte_source.o \
	src/gunzip.o \
	src/s3.o \
	src/aws_request.o \
	src/aws_api.o \
	src/cur_source.o \
	src/cur_columns.o \
	src/cur_load.o \
	src/cur_load_parallel.o \
	src/cur_daily.o \
	src/numeric_sum.o \
	src/sql_api.o

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*--*.sql))

PG_CPPFLAGS = -I$(srcdir)/include
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers -Wno-cast-function-type
SHLIB_LINK = -lcurl -lssl -lcrypto -lz -lisal -lpthread -lsnappy -lzstd -llz4

# pg_regress: test scripts in sql/*.sql (not the install sources), outputs in expected/.
REGRESS = $(sort $(basename $(notdir $(wildcard sql/[0-9][0-9]_*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=hstore --load-extension=pg_billops

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object is rebuilt when a header changes (PGXS does not track them)
$(OBJS): $(wildcard include/*.h)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

.PHONY: bench bench-scale crash-matrix
bench:
	bash test/bench/run.sh
	bash test/bench/parquet.sh
	bash test/bench/focus.sh
	bash test/bench/bill.sh

# cost growth at 1 M, 5 M and 20 M rows and a year of months (~30 M rows, ~35 GB of disk, ~30 min)
bench-scale:
	bash test/bench/scale.sh

crash-matrix:
	bash test/bench/bill-crash-matrix.sh
