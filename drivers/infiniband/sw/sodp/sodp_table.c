// SPDX-License-Identifier: GPL-2.0
/*
 * The mirror table: per page the pfn and permission that hmm_range_fault()
 * reported, valid from the publish after mmu_interval_read_retry() until the
 * invalidate callback clears it. Both happen under umem->lock, so a reader
 * holding umem->lock may use an entry's page: the invalidation that would
 * unmap it cannot complete until the reader drops the lock.
 *
 * The table is sparse. Chunks of SODP_CHUNK_PAGES entries are allocated by
 * the fault path, so an untouched range costs nothing beyond the xarray,
 * and freed again once none of their pages is mirrored: by the fault path
 * when its fault published nothing (a probe of a hole leaves nothing
 * behind), and by umem->reclaim_work when an invalidation emptied them.
 * So the table costs a chunk per 2 MiB that has a page mirrored, whatever
 * a peer probes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/slab.h>

#include "sodp_priv.h"

/**
 * sodp_table_prepare() - make sure the chunk holding a page exists
 * @umem: the umem
 * @pgidx: absolute page number
 *
 * Context: process context, holds umem->fault_mutex. May sleep.
 * Return: 0 or -ENOMEM.
 */
int sodp_table_prepare(struct sodp_umem *umem, unsigned long pgidx)
{
	unsigned long ci = pgidx >> SODP_CHUNK_SHIFT;
	struct sodp_chunk *chunk;
	int ret;

	lockdep_assert_held(&umem->fault_mutex);

	if (xa_load(&umem->chunks, ci))
		return 0;

	chunk = kzalloc(sizeof(*chunk), GFP_KERNEL);
	if (!chunk)
		return -ENOMEM;

	/* Only chunk stores and erases need the xarray lock: fault_mutex. */
	ret = xa_err(xa_store(&umem->chunks, ci, chunk, GFP_KERNEL));
	if (ret) {
		kfree(chunk);
		return ret;
	}
	atomic64_inc(&sodp_table_chunks);
	return 0;
}

/**
 * sodp_table_lookup_locked() - read the mirror table entry of a page
 * @umem: the umem
 * @pgidx: absolute page number
 *
 * Context: any, holds umem->lock.
 * Return: 0 if the page is not mirrored, else HMM_PFN_VALID, optionally
 * HMM_PFN_WRITE, and the pfn.
 */
unsigned long sodp_table_lookup_locked(struct sodp_umem *umem,
				       unsigned long pgidx)
{
	struct sodp_chunk *chunk;

	lockdep_assert_held(&umem->lock);

	chunk = xa_load(&umem->chunks, pgidx >> SODP_CHUNK_SHIFT);
	if (!chunk)
		return 0;
	return chunk->pfns[pgidx & SODP_CHUNK_MASK];
}

static unsigned long sodp_table_set(struct sodp_umem *umem,
				    struct sodp_chunk *chunk,
				    unsigned long pgidx, unsigned long entry)
{
	unsigned long *pte = &chunk->pfns[pgidx & SODP_CHUNK_MASK];
	unsigned long added = !(*pte & HMM_PFN_VALID);

	*pte = entry;
	umem->npages_mirrored += added;
	return added;
}

/*
 * A huge mapping is mapped by one PMD/PUD: hmm_range_fault() reported the
 * pfn of one of its pages, the others follow contiguously with the same
 * permission, and an invalidation of any part of it reaches our callback.
 * Publish the rest of it that lies in the same chunk and in the mirror, so
 * a stream over a THP or hugetlb page faults once per chunk.
 */
static unsigned long sodp_table_publish_huge(struct sodp_umem *umem,
					     struct sodp_mirror *mirror,
					     struct sodp_chunk *chunk,
					     unsigned long pgidx,
					     unsigned long hpfn,
					     unsigned long *endp)
{
	unsigned int order = hmm_pfn_to_map_order(hpfn);
	unsigned long first = pgidx & ~((1UL << order) - 1);
	unsigned long end = first + (1UL << order);
	unsigned long cfirst = pgidx & ~SODP_CHUNK_MASK;
	unsigned long flags = hpfn & SODP_PTE_FLAGS;
	unsigned long pfn = hpfn & ~HMM_PFN_FLAGS;
	unsigned long added = 0;
	unsigned long i;

	first = max3(first, cfirst, mirror->start >> PAGE_SHIFT);
	end = min3(end, cfirst + SODP_CHUNK_PAGES, mirror->end >> PAGE_SHIFT);
	for (i = first; i < end; i++)
		added += sodp_table_set(umem, chunk, i,
					flags | (pfn - pgidx + i));
	*endp = end;
	return added;
}

/**
 * sodp_table_publish_locked() - store the result of hmm_range_fault()
 * @umem: the umem
 * @mirror: the mirror whose notifier @range was faulted under
 * @range: the faulted range, mmu_interval_read_retry() just returned false
 *
 * Stores every valid pfn of @range (a huge mapping: all of its pages in the
 * chunk, see sodp_table_publish_huge()). The chunks must exist.
 *
 * Context: any, holds umem->lock.
 * Return: number of pages that were not mirrored before.
 */
unsigned long sodp_table_publish_locked(struct sodp_umem *umem,
					struct sodp_mirror *mirror,
					const struct hmm_range *range)
{
	unsigned long first = range->start >> PAGE_SHIFT;
	unsigned long end = range->end >> PAGE_SHIFT;
	struct sodp_chunk *chunk = NULL;
	unsigned long added = 0;
	unsigned long pgidx = first;
	unsigned long next;

	lockdep_assert_held(&umem->lock);

	while (pgidx < end) {
		unsigned long hpfn = range->hmm_pfns[pgidx - first];

		if (!chunk || !(pgidx & SODP_CHUNK_MASK)) {
			chunk = xa_load(&umem->chunks,
					pgidx >> SODP_CHUNK_SHIFT);
			if (WARN_ON_ONCE(!chunk))
				break;
		}

		next = pgidx + 1;
		if ((hpfn & (HMM_PFN_VALID | HMM_PFN_ERROR)) != HMM_PFN_VALID) {
			pgidx = next;
			continue;
		}

		if (hmm_pfn_to_map_order(hpfn))
			added += sodp_table_publish_huge(umem, mirror, chunk,
							 pgidx, hpfn, &next);
		else
			added += sodp_table_set(umem, chunk, pgidx, hpfn &
						(SODP_PTE_FLAGS | ~HMM_PFN_FLAGS));
		pgidx = next;
	}

	return added;
}

static bool sodp_chunk_empty(const struct sodp_chunk *chunk)
{
	unsigned int i;

	for (i = 0; i < SODP_CHUNK_PAGES; i++)
		if (chunk->pfns[i] & HMM_PFN_VALID)
			return false;
	return true;
}

/**
 * sodp_table_clear_locked() - forget the mirror entries of a page range
 * @umem: the umem
 * @first: first absolute page number
 * @end: end page number (exclusive)
 *
 * A chunk this empties is noted in umem->reclaim_first/reclaim_end, for
 * umem->reclaim_work to free.
 *
 * Context: any, holds umem->lock.
 * Return: number of entries that were valid.
 */
unsigned long sodp_table_clear_locked(struct sodp_umem *umem,
				      unsigned long first, unsigned long end)
{
	struct sodp_chunk *chunk;
	unsigned long cleared = 0;
	unsigned long ci;

	lockdep_assert_held(&umem->lock);

	if (first >= end)
		return 0;

	xa_for_each_range(&umem->chunks, ci, chunk, first >> SODP_CHUNK_SHIFT,
			  (end - 1) >> SODP_CHUNK_SHIFT) {
		unsigned long cfirst = ci << SODP_CHUNK_SHIFT;
		unsigned long i = max(first, cfirst) - cfirst;
		unsigned long last = min(end, cfirst + SODP_CHUNK_PAGES) -
				     cfirst;
		unsigned long n = 0;

		for (; i < last; i++) {
			if (chunk->pfns[i] & HMM_PFN_VALID)
				n++;
			chunk->pfns[i] = 0;
		}
		if (n && sodp_chunk_empty(chunk)) {
			umem->reclaim_first = min(umem->reclaim_first, ci);
			umem->reclaim_end = max(umem->reclaim_end, ci + 1);
		}
		cleared += n;
	}
	umem->npages_mirrored -= cleared;
	return cleared;
}

/**
 * sodp_table_free_chunk() - free one chunk of the mirror table
 * @umem: the umem
 * @ci: chunk index
 *
 * The entries of the chunk must have been cleared.
 *
 * Context: process context, holds umem->fault_mutex.
 */
void sodp_table_free_chunk(struct sodp_umem *umem, unsigned long ci)
{
	struct sodp_chunk *chunk;

	lockdep_assert_held(&umem->fault_mutex);

	chunk = xa_erase(&umem->chunks, ci);
	if (!chunk)
		return;
	/*
	 * Readers look chunks up under umem->lock. Once we held it after the
	 * erase, none of them can still be using this chunk.
	 */
	spin_lock_bh(&umem->lock);
	spin_unlock_bh(&umem->lock);
	kfree(chunk);
	atomic64_dec(&sodp_table_chunks);
}

/**
 * sodp_table_chunk_idle() - is no page of a chunk mirrored?
 * @umem: the umem
 * @ci: chunk index
 *
 * Only a fault publishes entries, so the answer holds until the caller
 * drops umem->fault_mutex.
 *
 * Context: process context, holds umem->fault_mutex. Takes umem->lock.
 * Return: true if the chunk does not exist or has no valid entry.
 */
bool sodp_table_chunk_idle(struct sodp_umem *umem, unsigned long ci)
{
	struct sodp_chunk *chunk;
	bool idle;

	lockdep_assert_held(&umem->fault_mutex);

	chunk = xa_load(&umem->chunks, ci);
	if (!chunk)
		return true;
	spin_lock_bh(&umem->lock);
	idle = sodp_chunk_empty(chunk);
	spin_unlock_bh(&umem->lock);
	return idle;
}

/**
 * sodp_table_destroy() - free the whole mirror table
 * @umem: the umem, no longer reachable by the mm or the data path
 *
 * Context: process context.
 */
void sodp_table_destroy(struct sodp_umem *umem)
{
	struct sodp_chunk *chunk;
	unsigned long ci;

	xa_for_each(&umem->chunks, ci, chunk) {
		kfree(chunk);
		atomic64_dec(&sodp_table_chunks);
	}
	xa_destroy(&umem->chunks);
}
