/*
 * err.c - error codes and the caller-owned message buffer.
 *
 * Messages are one line, lower case, with the subject quoted by the caller
 * ("cannot open 'x.pdf': ..."). Nothing here prints.
 */
#include "common.h"

#include <stdio.h>
#include <string.h>

const char *ed_strerror(int code)
{
	switch (code) {
	case ED_OK: return "success";
	case ED_EINVAL: return "invalid argument";
	case ED_ENOMEM: return "out of memory";
	case ED_EFORMAT: return "invalid input data";
	case ED_ENOENT: return "input missing or unreadable";
	case ED_EUNAVAIL: return "model server unavailable";
	case ED_EINTERNAL: return "internal error";
	case ED_ECREATE: return "cannot create output";
	case ED_EIO: return "i/o error";
	case ED_EAGAIN: return "temporary failure";
	case ED_EPASSWORD: return "password required or wrong";
	case ED_ECONFIG: return "bad model or configuration";
	case ED_EINTR: return "interrupted";
	case ED_ETOOBIG: return "size limit exceeded";
	case ED_ENEEDMODEL: return "needs a model";
	}
	return "unknown error";
}

int ed_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		/* one line: fold any newline a library handed us */
		for (char *p = err; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
	}
	return code;
}

void ed_err_prefix(char *err, size_t errlen, const char *fmt, ...)
{
	char pre[256], old[1024];
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	snprintf(old, sizeof old, "%s", err);
	if (old[0])
		snprintf(err, errlen, "%s: %s", pre, old);
	else
		snprintf(err, errlen, "%s", pre);
}
