/*
 * faultvfs.h - a SQLite VFS over the default one that fails the N-th
 * write, sync or lock (fail_at; 0: never, -1: count only), made the
 * default by faultvfs_install(). Shared by test_vfs.c (in process) and
 * faultvfs.c (preloaded into ernie-doc by tests/faults.sh).
 */
#ifndef ED_FAULTVFS_H
#define ED_FAULTVFS_H

#include <sqlite3.h>

static sqlite3_vfs *real_vfs;
static long ops, fail_at; /* fail_at 0: never */
static int fail_kind;	  /* which op failed last: 1 write, 2 sync, 3 lock */

struct ffile {
	sqlite3_file base;
	sqlite3_file *real;
};

static int fault(int kind)
{
	/* the writer thread and the main thread both reach the database */
	if (fail_at &&
	    __atomic_add_fetch(&ops, 1, __ATOMIC_SEQ_CST) == fail_at) {
		fail_kind = kind;
		return 1;
	}
	return 0;
}

#define REAL(f) (((struct ffile *)(f))->real)

static int f_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xRead(REAL(f), p, n, o);
}
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 o)
{
	if (fault(1))
		return SQLITE_IOERR_WRITE;
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, o);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 n)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int f_sync(sqlite3_file *f, int flags)
{
	if (fault(2))
		return SQLITE_IOERR_FSYNC;
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *n)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int f_lock(sqlite3_file *f, int l)
{
	if (fault(3))
		return SQLITE_BUSY;
	return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int f_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int f_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_chars(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **p)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags)
{
	if ((flags & SQLITE_SHM_LOCK) && fault(3))
		return SQLITE_BUSY;
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shmbarrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shmunmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p)
{
	return REAL(f)->pMethods->xFetch(REAL(f), o, n, p);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static const sqlite3_io_methods methods = {
    3,	       f_close,	 f_read,    f_write,	  f_truncate, f_sync,
    f_size,    f_lock,	 f_unlock,  f_reserved,	  f_control,  f_sector,
    f_chars,   f_shmmap, f_shmlock, f_shmbarrier, f_shmunmap, f_fetch,
    f_unfetch,
};

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags,
		  int *out)
{
	struct ffile *ff = (struct ffile *)f;
	int rc;
	(void)v;
	ff->real = (sqlite3_file *)&ff[1];
	rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
	/* a file the real VFS did not open has no methods to call */
	ff->base.pMethods = rc == SQLITE_OK ? &methods : NULL;
	return rc;
}
static int v_delete(sqlite3_vfs *v, const char *n, int sync)
{
	(void)v;
	return real_vfs->xDelete(real_vfs, n, sync);
}
static int v_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{
	(void)v;
	return real_vfs->xAccess(real_vfs, n, flags, out);
}
static int v_full(sqlite3_vfs *v, const char *n, int len, char *out)
{
	(void)v;
	return real_vfs->xFullPathname(real_vfs, n, len, out);
}
static int v_random(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xRandomness(real_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return real_vfs->xSleep(real_vfs, us);
}
static int v_time(sqlite3_vfs *v, double *t)
{
	(void)v;
	return real_vfs->xCurrentTime(real_vfs, t);
}
static int v_error(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xGetLastError(real_vfs, n, out);
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
	(void)v;
	return real_vfs->xCurrentTimeInt64(real_vfs, t);
}

static sqlite3_vfs faulty = {
    .iVersion = 2,
    .mxPathname = 512,
    .zName = "faulty",
    .xOpen = v_open,
    .xDelete = v_delete,
    .xAccess = v_access,
    .xFullPathname = v_full,
    .xRandomness = v_random,
    .xSleep = v_sleep,
    .xCurrentTime = v_time,
    .xGetLastError = v_error,
    .xCurrentTimeInt64 = v_time64,
};

static int faultvfs_install(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs)
		return -1;
	faulty.szOsFile = (int)sizeof(struct ffile) + real_vfs->szOsFile;
	faulty.mxPathname = real_vfs->mxPathname;
	return sqlite3_vfs_register(&faulty, 1) == SQLITE_OK ? 0 : -1;
}

#endif
