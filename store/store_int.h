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

#endif
