/*
 * aws_credential_process.c — credentials from an external program: the
 * shared config file's credential_process setting ("Sourcing credentials
 * with an external process", AWS SDKs and Tools Reference Guide).
 *
 * The program is run without a shell, like botocore (which splits the
 * setting with Python's shlex and runs the words): words are split on
 * blanks; single quotes keep everything literally, double quotes keep all
 * but \" \\ \$ \` and a backslash-newline, and a backslash outside quotes
 * keeps the next character.  Its standard input is /dev/null; it inherits
 * the server's environment but no descriptor beyond standard output and
 * error (a backend holds its client's socket and data files); it runs in a
 * process group of its own, killed at the timeout
 * (billops.aws_credential_process_timeout) or when the query is cancelled.
 *
 * It must exit 0 and print, on standard output, JSON of Version 1:
 *   {"Version": 1, "AccessKeyId": "...", "SecretAccessKey": "...",
 *    "SessionToken": "...", "Expiration": "<ISO 8601>"}
 * SessionToken and Expiration are optional; without Expiration the keys are
 * long-term.  Anything else is refused: a non-zero exit, a signal or the
 * timeout with 38000 (its first line of standard error in the detail:
 * programs report failures there, and the guide asks them to); output that
 * is not such JSON, or credentials already expired, with 28000.  Standard
 * output is never shown (it holds the secret) and is wiped once read.
 * Output beyond 64 kB is refused.
 */
#include "postgres.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "billops.h"
#include "billops_credentials.h"
#include "billops_json.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#define PROCESS_OUTPUT_MAX (64 * 1024)
#define PROCESS_STDERR_KEPT 4096

static int	process_timeout_s = 60;

void
billops_aws_credential_process_init(void)
{
	DefineCustomIntVariable("billops.aws_credential_process_timeout",
							"How long a credential_process program may run before it is killed.",
							"AWS's SDKs set no limit; a program that never answers would hold a backend forever.",
							&process_timeout_s, 60, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

/* The words of a credential_process setting, split as POSIX shells (and shlex) split them. */
static List *
aws_credential_process_words(const char *command, const char *found_in)
{
	List	   *words = NIL;
	StringInfoData w;
	bool		in_word = false;
	const char *p = command;

	initStringInfo(&w);
	while (*p)
	{
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		{
			if (in_word)
			{
				words = lappend(words, pstrdup(w.data));
				resetStringInfo(&w);
				in_word = false;
			}
			p++;
			continue;
		}
		in_word = true;
		if (*p == '\'')
		{
			const char *end = strchr(p + 1, '\'');

			if (end == NULL)
				goto unbalanced;
			appendBinaryStringInfo(&w, p + 1, end - p - 1);
			p = end + 1;
		}
		else if (*p == '"')
		{
			for (p++; *p && *p != '"'; p++)
			{
				if (*p == '\\' && p[1] && strchr("\"\\$`\n", p[1]))
					p++;
				appendStringInfoChar(&w, *p);
			}
			if (*p != '"')
				goto unbalanced;
			p++;
		}
		else if (*p == '\\' && p[1])
		{
			appendStringInfoChar(&w, p[1]);
			p += 2;
		}
		else
			appendStringInfoChar(&w, *p++);
	}
	if (in_word)
		words = lappend(words, pstrdup(w.data));
	if (words == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("credential_process of %s is empty", found_in)));
	return words;

unbalanced:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("credential_process of %s has an unbalanced quote", found_in),
			 errhint("Quote a path with spaces as \"/path/with spaces/helper\" or '/path/with spaces/helper'.")));
	return NIL;					/* not reached */
}

/* In the child: nothing but async-signal-safe calls until exec. */
static void
child_exec(char **argv, int out_fd, int err_fd)
{
	sigset_t	none;
	int			null_fd;

	/* signals stay blocked (the parent blocked them) until the handlers are reset */
	setpgid(0, 0);
	null_fd = open("/dev/null", O_RDONLY);
	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
		_exit(126);
	closefrom(3);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(argv[0], argv);
	{
		static const char msg[] = "pg_billops: could not execute the credential_process program\n";

		if (write(2, msg, sizeof(msg) - 1) < 0)
			_exit(127);
	}
	_exit(127);
}

typedef struct Running
{
	pid_t		pid;
	int			out_fd;
	int			err_fd;
	bool		reaped;
	int			status;
} Running;

/* Kill what is left of the program and its group, and reap it (also on error exits). */
static void
running_end(Running *r)
{
	if (r->out_fd >= 0)
		close(r->out_fd);
	if (r->err_fd >= 0)
		close(r->err_fd);
	r->out_fd = r->err_fd = -1;
	if (r->pid > 0 && !r->reaped)
	{
		kill(-r->pid, SIGKILL);
		kill(r->pid, SIGKILL);
		while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
			;
		r->reaped = true;
	}
}

/* Reads both pipes until both close; false at the timeout. */
static bool
collect(Running *r, StringInfo out, StringInfo err, bool *too_long)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), process_timeout_s * 1000);
	char		buf[4096];

	while (r->out_fd >= 0 || r->err_fd >= 0)
	{
		struct pollfd fds[2];
		int			n = 0;
		long		left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

		CHECK_FOR_INTERRUPTS();
		if (left_ms <= 0)
			return false;
		if (r->out_fd >= 0)
			fds[n++] = (struct pollfd) {r->out_fd, POLLIN, 0};
		if (r->err_fd >= 0)
			fds[n++] = (struct pollfd) {r->err_fd, POLLIN, 0};
		if (poll(fds, n, Min(left_ms, 500)) < 0)
		{
			if (errno == EINTR)
				continue;
			ereport(ERROR, (errcode_for_file_access(), errmsg("could not wait for the credential_process program: %m")));
		}
		for (int i = 0; i < n; i++)
		{
			bool		is_out = fds[i].fd == r->out_fd;
			ssize_t		got;

			if (fds[i].revents == 0)
				continue;
			got = read(fds[i].fd, buf, sizeof(buf));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
			{
				close(fds[i].fd);
				if (is_out)
					r->out_fd = -1;
				else
					r->err_fd = -1;
				continue;
			}
			if (is_out)
			{
				if (out->len + got > PROCESS_OUTPUT_MAX)
					*too_long = true;
				else
					appendBinaryStringInfo(out, buf, got);
			}
			else if (err->len < PROCESS_STDERR_KEPT)
				appendBinaryStringInfo(err, buf, Min(got, PROCESS_STDERR_KEPT - err->len));
		}
	}
	billops_wipe(buf, sizeof(buf));
	while (waitpid(r->pid, &r->status, 0) < 0)
	{
		if (errno != EINTR)
			ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR), errmsg("could not wait for the credential_process program: %m")));
		CHECK_FOR_INTERRUPTS();
	}
	r->reaped = true;
	return true;
}

/* The first line of what the program said on standard error, for a message. */
static char *
first_line(StringInfo err)
{
	char	   *s = err->data;
	size_t		n;

	while (*s == '\n' || *s == '\r' || *s == ' ')
		s++;
	n = strcspn(s, "\r\n");
	if (n == 0)
		return pstrdup("(nothing on standard error)");
	return psprintf("standard error: %s", pnstrdup(s, Min(n, 300)));
}

/* A top-level member of a JSON object, as jsonb sees it; NULL when absent. */
static JsonbValue *
member(Jsonb *jb, const char *key)
{
	return getKeyJsonValueFromContainer(&jb->root, key, strlen(key), NULL);
}

AwsCredentials *
aws_credential_process(const char *command, const char *found_in)
{
	List	   *words = aws_credential_process_words(command, found_in);
	char	  **argv = palloc0(sizeof(char *) * (list_length(words) + 1));
	int			out_pipe[2] = {-1, -1};
	int			err_pipe[2] = {-1, -1};
	Running		r = {0, -1, -1, false, 0};
	StringInfoData out;
	StringInfoData err;
	volatile bool finished = false;
	bool		too_long = false;
	ListCell   *lc;
	int			i = 0;
	Jsonb	   *jb;
	JsonbValue *version;
	AwsCredentials *c;
	char	   *expiration;
	sigset_t	all;
	sigset_t	saved;

	foreach(lc, words)
		argv[i++] = lfirst(lc);
	initStringInfo(&out);
	initStringInfo(&err);
	if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0)
		ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR), errmsg("could not make a pipe for credential_process: %m")));
	fflush(NULL);
	/* no handler of this backend may run in the child before exec resets them */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	r.pid = fork();
	if (r.pid == 0)
		child_exec(argv, out_pipe[1], err_pipe[1]);
	sigprocmask(SIG_SETMASK, &saved, NULL);
	close(out_pipe[1]);
	close(err_pipe[1]);
	r.out_fd = out_pipe[0];
	r.err_fd = err_pipe[0];
	if (r.pid < 0)
	{
		running_end(&r);
		ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR), errmsg("could not start the credential_process program of %s: %m", found_in)));
	}
	PG_TRY();
	{
		finished = collect(&r, &out, &err, &too_long);
	}
	PG_FINALLY();
	{
		running_end(&r);
	}
	PG_END_TRY();

	if (!finished)
	{
		billops_wipe(out.data, out.len);
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("the credential_process program \"%s\" of %s did not finish within %d s and was killed",
						argv[0], found_in, process_timeout_s),
				 errdetail("%s", first_line(&err)),
				 errhint("Raise billops.aws_credential_process_timeout if the program needs longer.")));
	}
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
	{
		billops_wipe(out.data, out.len);
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("the credential_process program \"%s\" of %s %s", argv[0], found_in,
						WIFEXITED(r.status) ? psprintf("exited with status %d", WEXITSTATUS(r.status))
						: psprintf("was killed by signal %d", WTERMSIG(r.status))),
				 errdetail("%s", first_line(&err)),
				 WIFEXITED(r.status) && WEXITSTATUS(r.status) == 127
				 ? errhint("Status 127: the program was not found or could not be run by the server account.") : 0));
	}
	if (too_long)
	{
		billops_wipe(out.data, out.len);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the credential_process program \"%s\" of %s printed more than 64 kB", argv[0], found_in)));
	}
	jb = billops_json_parse(out.data, out.len);
	billops_wipe(out.data, out.len);
	version = jb && JB_ROOT_IS_OBJECT(jb) ? member(jb, "Version") : NULL;
	if (version == NULL || version->type != jbvNumeric ||
		!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(version->val.numeric),
										  DirectFunctionCall1(int4_numeric, Int32GetDatum(1)))))
	{
		const char *what = jb == NULL ? "something that is not JSON" :
			!JB_ROOT_IS_OBJECT(jb) ? "JSON that is not an object" :
			version == NULL ? "JSON without \"Version\"" : "a \"Version\" other than 1";

		if (jb)
			billops_wipe(jb, VARSIZE(jb));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the credential_process program \"%s\" of %s printed %s", argv[0], found_in, what),
				 errdetail("Its output is not shown: it may hold a secret."),
				 errhint("The program must print {\"Version\": 1, \"AccessKeyId\": ..., \"SecretAccessKey\": ..., \"SessionToken\": ..., \"Expiration\": ...}.")));
	}
	c = palloc0(sizeof(AwsCredentials));
	c->access_key_id = billops_json_string(jb, "AccessKeyId");
	c->secret_access_key = billops_json_string(jb, "SecretAccessKey");
	c->session_token = billops_json_string(jb, "SessionToken");
	expiration = billops_json_string(jb, "Expiration");
	billops_wipe(jb, VARSIZE(jb));
	if (c->access_key_id == NULL || c->access_key_id[0] == '\0' ||
		c->secret_access_key == NULL || c->secret_access_key[0] == '\0')
	{
		aws_credentials_free(c);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the credential_process program \"%s\" of %s printed no %s", argv[0], found_in,
						c->access_key_id == NULL || c->access_key_id[0] == '\0' ? "AccessKeyId" : "SecretAccessKey"),
				 errdetail("Its output is not shown: it may hold a secret.")));
	}
	if (c->session_token && c->session_token[0] == '\0')
	{
		pfree(c->session_token);
		c->session_token = NULL;
	}
	c->origin = psprintf("credential_process of %s", found_in);
	if (expiration)
	{
		c->expiration = aws_expiration_parse(expiration, c->origin);
		if (c->expiration <= GetCurrentTimestamp())
		{
			aws_credentials_free(c);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("the credential_process program \"%s\" of %s printed credentials that expired at %s",
							argv[0], found_in, expiration),
					 errhint("The program must print credentials that are still valid.")));
		}
	}
	else
		c->keep = true;			/* long-term keys from a program: run it once, not per request */
	return c;
}
