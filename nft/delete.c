/*
 * delete.c — remove one of our tables, and nothing else: never a flush of
 * the ruleset, so other tables in the namespace keep working.
 */
#include <stdio.h>
#include <string.h>

#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "nft/internal.h"

int fb_nft_delete(const char *table, char *err, size_t errsize)
{
	struct fbn_batch b;
	struct fbn_tbl t;
	int rc;

	if (!table || !*table) {
		snprintf(err, errsize, "no table name given to delete");
		return -1;
	}
	fbn_batch_init(&b);
	fbn_tbl_drop(&t, &b, table);
	rc = fbn_batch_commit(&b, err, errsize);
	fbn_batch_free(&b);
	return rc;
}
