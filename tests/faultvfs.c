/*
 * faultvfs.c - the failing VFS (faultvfs.h) as a library preloaded into
 * ernie-doc: ED_FAULT_AT=N fails the N-th write, sync or lock of the
 * process (-1: none, only counted); at exit the number of operations is
 * written to the file ED_FAULT_OPS, and with a fault, which kind failed
 * ("write", "sync", "lock") to ED_FAULT_OPS.kind. tests/faults.sh runs
 * `ernie-doc batch` under it with the fault at every N in turn.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tests/faultvfs.h"

static void report(void)
{
	const char *path = getenv("ED_FAULT_OPS");
	static const char *const kind[] = {"none", "write", "sync", "lock"};
	FILE *f;
	if (!path || !(f = fopen(path, "w")))
		return;
	fprintf(f, "%ld %s\n", ops, kind[fail_kind]);
	fclose(f);
}

__attribute__((constructor)) static void faultvfs_init(void)
{
	const char *at = getenv("ED_FAULT_AT");
	if (!at)
		return;
	fail_at = strtol(at, NULL, 10);
	if (faultvfs_install() == 0)
		atexit(report);
}
