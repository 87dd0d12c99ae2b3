/*
 * store_int.h - private to store/: the connection handle and the schema.
 */
#ifndef ED_STORE_INT_H
#define ED_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

/* store_migrations[v] takes a database from version v to v + 1. */
extern const char *const store_migrations[];
extern const int store_nmigrations;

struct ed_store {
	sqlite3 *db;
	bool readonly;
	sqlite3_stmt *lookup, *del, *ins, *ins_block, *ins_cell, *ins_field,
	    *ins_zoom;
};

/* Helpers store.c and extract.c share: an error from SQLite's message
 * (ED_EAGAIN when the database is locked), a statement run, rows to a
 * callback. */
int store_db_err(struct ed_store *st, int code, char *err, size_t errlen,
		 const char *what);
int store_exec(struct ed_store *st, const char *sql, char *err, size_t errlen);
int store_commit(struct ed_store *st, char *err, size_t errlen);
int store_emit_rows(sqlite3_stmt *s, ed_store_row_fn cb, void *ud,
		    bool *stopped);

#endif
