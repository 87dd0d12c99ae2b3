/*
 * claims.c - which process is working on which page, for several
 * processes writing one database (batch started twice, or on purpose to
 * share a tree): a row per claimed resume key with its owner and the
 * time it lapses. A claim is taken in one statement (a new row, or one
 * whose claim lapsed or is the owner's own), so two processes never hold
 * the same page; the owner renews its claims while it works and drops
 * them as each page is stored.
 */
#include "store_int.h"

#include <stdio.h>

#define NOW "(julianday('now') * 86400.0)"

static int run(struct ed_store *st, const char *sql,
	       const struct ed_store_key *k, const char *owner, double lease,
	       int64_t *changes, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store_db_err(st, ED_EIO, err, errlen, "claims");
	if (k) {
		sqlite3_bind_int64(s, 1, k->doc_id);
		sqlite3_bind_int(s, 2, k->page_no);
		sqlite3_bind_text(s, 3, k->mode, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 4, k->model_id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 5, k->prompt_id, -1, SQLITE_TRANSIENT);
	}
	sqlite3_bind_text(s, 6, owner, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(s, 7, lease);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_db_err(st, ED_EIO, err, errlen, "claims");
	if (changes)
		*changes = sqlite3_changes64(st->db);
	return 0;
}

int ed_store_claim(struct ed_store *st, const struct ed_store_key *k,
		   const char *owner, double lease_s, bool *got, char *err,
		   size_t errlen)
{
	int64_t n = 0;
	int rc = run(st,
		     "INSERT INTO claims(document_id, page_no, mode, model_id, "
		     "prompt_id, owner, expires) VALUES (?1, ?2, ?3, ?4, ?5, "
		     "?6, " NOW " + ?7) ON CONFLICT DO UPDATE SET owner = "
		     "excluded.owner, expires = excluded.expires WHERE "
		     "claims.owner = excluded.owner OR claims.expires < " NOW,
		     k, owner, lease_s, &n, err, errlen);
	*got = !rc && n > 0;
	return rc;
}

int ed_store_claims_renew(struct ed_store *st, const char *owner,
			  double lease_s, char *err, size_t errlen)
{
	return run(st,
		   "UPDATE claims SET expires = " NOW " + ?7 WHERE owner = ?6",
		   NULL, owner, lease_s, NULL, err, errlen);
}

int ed_store_claim_release(struct ed_store *st, const struct ed_store_key *k,
			   const char *owner, char *err, size_t errlen)
{
	return run(st,
		   "DELETE FROM claims WHERE document_id = ?1 AND page_no = ?2 "
		   "AND mode = ?3 AND model_id = ?4 AND prompt_id = ?5 AND "
		   "owner = ?6",
		   k, owner, 0, NULL, err, errlen);
}

int ed_store_claims_drop(struct ed_store *st, const char *owner, char *err,
			 size_t errlen)
{
	return run(st, "DELETE FROM claims WHERE owner = ?6", NULL, owner, 0,
		   NULL, err, errlen);
}

int ed_store_claims_owners(struct ed_store *st, ed_store_row_fn cb, void *ud,
			   char *err, size_t errlen)
{
	sqlite3_stmt *s;
	bool stopped = false;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT DISTINCT owner FROM claims", -1,
			       &s, NULL) != SQLITE_OK)
		return store_db_err(st, ED_EIO, err, errlen, "claims");
	rc = store_emit_rows(s, cb, ud, &stopped);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0
				 : store_db_err(st, ED_EIO, err, errlen, "claims");
}
