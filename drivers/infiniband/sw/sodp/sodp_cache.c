// SPDX-License-Identifier: GPL-2.0
/*
 * The pinned fast-path cache: a bounded, aged set of page references taken
 * from valid mirror table entries, so that the data path copies through
 * kmap_local_page() without holding umem->lock during the copy and without
 * walking page tables.
 *
 * Each entry is a lease on one page. The lease protocol:
 *
 *  - A user finds the entry in the hash under umem->lock, raises its
 *    in-flight count (still under the lock) and drops the lock. It copies,
 *    then drops the count with a fully ordered atomic, see
 *    sodp_cache_unlease().
 *  - The invalidate callback recalls the entries of its range: under
 *    umem->lock it marks them recalled and unhashes them, so no new user can
 *    find them, then without the lock it waits for the in-flight count of
 *    those entries only, marks written pages dirty and drops the references
 *    before it returns. A user that raised the count before the recall took
 *    the lock is waited for; one that comes after does not find the entry
 *    (and the mirror entry was cleared in the same critical section, so it
 *    must fault, which waits for the invalidation to end). Hence no write
 *    lands in a page once the invalidation of that page has returned.
 *  - A non-blockable invalidation gives up (returns false) if any entry of
 *    its range is in flight, before changing anything.
 *
 * Idle entries never become long-term pins: the age work drops entries not
 * used for cache_idle_ms, and a full cache evicts its least recently used
 * idle entry.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include "sodp_priv.h"

/**
 * sodp_cache_init() - set up the cache of a new umem
 * @umem: the umem being created
 *
 * Context: process context. May sleep.
 * Return: 0 or -ENOMEM.
 */
int sodp_cache_init(struct sodp_umem *umem)
{
	struct sodp_cache *cache = &umem->cache;

	cache->max = sodp_param_cache_pages();
	cache->hash_bits = max(ilog2(cache->max) - 1, 4);
	cache->hash = kcalloc(1U << cache->hash_bits, sizeof(*cache->hash),
			      GFP_KERNEL);
	if (!cache->hash)
		return -ENOMEM;
	INIT_LIST_HEAD(&cache->lru);
	INIT_LIST_HEAD(&cache->release);
	init_waitqueue_head(&umem->recall_wq);
	INIT_DELAYED_WORK(&umem->age_work, sodp_cache_age_work);
	return 0;
}

static struct hlist_head *sodp_cache_bucket(struct sodp_umem *umem,
					    unsigned long pgidx)
{
	return &umem->cache.hash[hash_long(pgidx, umem->cache.hash_bits)];
}

static struct sodp_cent *sodp_cache_find_locked(struct sodp_umem *umem,
						unsigned long pgidx)
{
	struct sodp_cent *ent;

	lockdep_assert_held(&umem->lock);

	hlist_for_each_entry(ent, sodp_cache_bucket(umem, pgidx), hnode)
		if (ent->pgidx == pgidx)
			return ent;
	return NULL;
}

static void sodp_cent_unhash_locked(struct sodp_umem *umem,
				    struct sodp_cent *ent)
{
	lockdep_assert_held(&umem->lock);

	hlist_del(&ent->hnode);
	umem->cache.count--;
}

static void sodp_cent_hold_locked(struct sodp_umem *umem,
				  struct sodp_cent *ent, bool write)
{
	lockdep_assert_held(&umem->lock);

	/*
	 * Raised under umem->lock, which the recall holds while it marks the
	 * entry recalled and unhashes it: either the recall runs later and
	 * sees this count, or we did not find the entry. The lock orders the
	 * two, no further barrier is needed here.
	 */
	atomic_inc(&ent->inflight);
	ent->last_use = jiffies;
	if (write)
		ent->dirty = true;
	list_move_tail(&ent->lru, &umem->cache.lru);
}

/* Drop the reference of an entry no user can reach any more. */
static void sodp_cent_free(struct sodp_cent *ent)
{
	/*
	 * Not set_page_dirty_lock(): the invalidate callback may run with
	 * the folio lock held by its caller (migration, truncation).
	 */
	if (ent->dirty)
		set_page_dirty(ent->page);
	/* Pairs with get_page() in sodp_cache_lease(). */
	put_page(ent->page);
	atomic64_dec(&sodp_pages_held);
	kmem_cache_free(sodp_cent_cache, ent);
}

/* Move the least recently used idle entry to @out. */
static bool sodp_cache_evict_locked(struct sodp_umem *umem,
				    struct list_head *out)
{
	struct sodp_cent *ent;

	lockdep_assert_held(&umem->lock);

	list_for_each_entry(ent, &umem->cache.lru, lru) {
		/* Raised only under umem->lock: an idle entry stays idle. */
		if (atomic_read(&ent->inflight))
			continue;
		sodp_cent_unhash_locked(umem, ent);
		list_move_tail(&ent->lru, out);
		return true;
	}
	return false;
}

/**
 * sodp_cache_lease() - lease the page of a mirrored VA from the cache
 * @umem: the umem
 * @pgidx: absolute page number
 * @write: the caller will write to the page
 * @atomic: atomic context: no sleeping allocation, defer page releases
 * @entp: the leased entry, to pass to sodp_cache_unlease()
 *
 * A cache hit raises the in-flight count of the entry. A miss whose mirror
 * entry is valid with the needed permission takes a page reference and
 * inserts a new entry, evicting the least recently used idle one if the
 * cache is full (if all are in flight, the cache grows past its bound
 * until they are released).
 *
 * Context: process context, or softirq with @atomic. Takes umem->lock.
 * Return: 0 on a cache hit, 1 when the lease was filled from the mirror
 * table, -ENOENT when the page must be faulted first, -EAGAIN (@atomic)
 * or -ENOMEM when no entry could be allocated.
 */
int sodp_cache_lease(struct sodp_umem *umem, unsigned long pgidx,
		     bool write, bool atomic, struct sodp_cent **entp)
{
	struct sodp_cent *ent, *spare = NULL;
	struct list_head *evict_to;
	LIST_HEAD(evicted);
	unsigned long hpfn;
	int ret;

	for (;;) {
		spin_lock_bh(&umem->lock);
		ent = sodp_cache_find_locked(umem, pgidx);
		if (ent && (!write || ent->writable)) {
			ret = 0;
			goto out_hold;
		}

		hpfn = sodp_table_lookup_locked(umem, pgidx);
		if (!(hpfn & HMM_PFN_VALID) ||
		    (write && !(hpfn & HMM_PFN_WRITE))) {
			ret = -ENOENT;
			goto out_unlock;
		}

		if (ent) {
			/*
			 * A write fault upgraded the mirror entry. Any change
			 * of the page would have gone through an invalidation,
			 * which recalls the entry first.
			 */
			if (WARN_ON_ONCE(page_to_pfn(ent->page) !=
					 (hpfn & ~HMM_PFN_FLAGS))) {
				ret = -EFAULT;
				goto out_unlock;
			}
			ent->writable = true;
			ret = 1;
			goto out_hold;
		}
		if (spare)
			break;

		spin_unlock_bh(&umem->lock);
		spare = kmem_cache_alloc(sodp_cent_cache, atomic ?
					 GFP_NOWAIT | __GFP_NOWARN :
					 GFP_KERNEL);
		if (!spare)
			return atomic ? -EAGAIN : -ENOMEM;
	}

	/* Still under umem->lock: insert the spare entry. */
	ent = spare;
	spare = NULL;
	/* In atomic context the age work drops the evicted reference. */
	evict_to = atomic ? &umem->cache.release : &evicted;
	if (umem->cache.count >= umem->cache.max &&
	    sodp_cache_evict_locked(umem, evict_to) && atomic)
		mod_delayed_work(sodp_wq, &umem->age_work, 0);

	ent->page = hmm_pfn_to_page(hpfn);
	ent->pgidx = pgidx;
	ent->writable = hpfn & HMM_PFN_WRITE;
	ent->dirty = false;
	ent->recalled = false;
	atomic_set(&ent->inflight, 0);
	/*
	 * The mirror entry is valid and we hold umem->lock, so the page is
	 * still mapped (its invalidation would need the lock) and has a
	 * reference to add to. Pairs with put_page() in sodp_cent_free().
	 */
	get_page(ent->page);
	atomic64_inc(&sodp_pages_held);
	hlist_add_head(&ent->hnode, sodp_cache_bucket(umem, pgidx));
	list_add_tail(&ent->lru, &umem->cache.lru);
	umem->cache.count++;
	ret = 1;

out_hold:
	sodp_cent_hold_locked(umem, ent, write);
	*entp = ent;
out_unlock:
	spin_unlock_bh(&umem->lock);
	if (spare)
		kmem_cache_free(sodp_cent_cache, spare);
	if (ret == 1) {
		/* A no-op while the work is pending. */
		queue_delayed_work(sodp_wq, &umem->age_work,
				   sodp_param_idle_jiffies());
		sodp_cache_release_list(umem, &evicted);
	}
	return ret;
}

/**
 * sodp_cache_unlease() - end the use of a leased page
 * @umem: the umem
 * @ent: the entry returned by sodp_cache_lease()
 *
 * Context: any context the lease was taken in.
 */
void sodp_cache_unlease(struct sodp_umem *umem, struct sodp_cent *ent)
{
	/*
	 * atomic_dec_and_test() is fully ordered: the caller's accesses to
	 * the page complete before the count drops. Pairs with
	 * atomic_read_acquire() in sodp_cache_release_list(). A recall may
	 * free @ent as soon as the count is zero, so only @umem is touched
	 * below. wq_has_sleeper() has a full barrier that pairs with the
	 * one in prepare_to_wait_event() of the recalling waiter.
	 */
	if (atomic_dec_and_test(&ent->inflight) &&
	    wq_has_sleeper(&umem->recall_wq))
		wake_up_all(&umem->recall_wq);
}

/*
 * Visit the entries of [first, end): by hash for a range smaller than the
 * cache, by a walk of the LRU list otherwise. With @out, recall them onto
 * @out and return how many; without, return how many are in flight.
 */
static unsigned int sodp_cache_scan_locked(struct sodp_umem *umem,
					   unsigned long first,
					   unsigned long end,
					   struct list_head *out)
{
	struct sodp_cent *ent, *tmp;
	unsigned int n = 0;
	unsigned long pg;

	lockdep_assert_held(&umem->lock);

	if (first >= end || !umem->cache.count)
		return 0;

	if (end - first <= umem->cache.count) {
		for (pg = first; pg < end; pg++) {
			ent = sodp_cache_find_locked(umem, pg);
			if (!ent)
				continue;
			if (!out) {
				n += !!atomic_read(&ent->inflight);
				continue;
			}
			ent->recalled = true;
			sodp_cent_unhash_locked(umem, ent);
			list_move_tail(&ent->lru, out);
			n++;
		}
		return n;
	}

	list_for_each_entry_safe(ent, tmp, &umem->cache.lru, lru) {
		if (ent->pgidx < first || ent->pgidx >= end)
			continue;
		if (!out) {
			n += !!atomic_read(&ent->inflight);
			continue;
		}
		ent->recalled = true;
		sodp_cent_unhash_locked(umem, ent);
		list_move_tail(&ent->lru, out);
		n++;
	}
	return n;
}

/**
 * sodp_cache_busy_locked() - is any cached page of a range in flight
 * @umem: the umem
 * @first: first absolute page number
 * @end: end page number (exclusive)
 *
 * Context: any, holds umem->lock.
 * Return: true if a copy is using a page of the range right now.
 */
bool sodp_cache_busy_locked(struct sodp_umem *umem, unsigned long first,
			    unsigned long end)
{
	return sodp_cache_scan_locked(umem, first, end, NULL);
}

/**
 * sodp_cache_recall_locked() - stop new users of the cached pages of a range
 * @umem: the umem
 * @first: first absolute page number
 * @end: end page number (exclusive)
 * @out: list receiving the recalled entries
 *
 * Marks the entries recalled and unhashes them. Entries evicted in atomic
 * context and not yet released are moved to @out as well. The caller must
 * pass @out to sodp_cache_release_list() after dropping umem->lock.
 *
 * Context: any, holds umem->lock.
 * Return: number of entries of the range recalled.
 */
unsigned int sodp_cache_recall_locked(struct sodp_umem *umem,
				      unsigned long first, unsigned long end,
				      struct list_head *out)
{
	unsigned int n = sodp_cache_scan_locked(umem, first, end, out);

	list_splice_tail_init(&umem->cache.release, out);
	return n;
}

/**
 * sodp_cache_release_list() - release unhashed cache entries
 * @umem: the umem
 * @list: the entries, reachable by no new user
 *
 * Waits for the in-flight copies of each entry, marks the page dirty if it
 * was leased for writing, drops the page reference and frees the entry.
 * Waits only for copies of these pages: never for a fault or a peer.
 *
 * Context: process context; may sleep only if an entry is in flight.
 * Return: number of entries that had to be waited for.
 */
unsigned int sodp_cache_release_list(struct sodp_umem *umem,
				     struct list_head *list)
{
	struct sodp_cent *ent, *tmp;
	unsigned int nwaited = 0;

	list_for_each_entry_safe(ent, tmp, list, lru) {
		/* Pairs with atomic_dec_and_test() in sodp_cache_unlease(). */
		if (atomic_read_acquire(&ent->inflight)) {
			nwaited++;
			wait_event(umem->recall_wq,
				   !atomic_read_acquire(&ent->inflight));
		}
		list_del(&ent->lru);
		sodp_cent_free(ent);
	}
	return nwaited;
}

/**
 * sodp_cache_age_work() - drop idle cache entries
 * @work: umem->age_work
 *
 * Drops the entries not used for cache_idle_ms and those evicted in atomic
 * context, then runs again after half the idle time while the cache is not
 * empty. An idle entry is thus dropped at most 1.5 * cache_idle_ms (plus
 * workqueue latency) after its last use.
 *
 * Context: workqueue (process context).
 */
void sodp_cache_age_work(struct work_struct *work)
{
	struct sodp_umem *umem = container_of(to_delayed_work(work),
					      struct sodp_umem, age_work);
	unsigned long idle = sodp_param_idle_jiffies();
	unsigned long now = jiffies;
	struct sodp_cent *ent, *tmp;
	LIST_HEAD(old);
	bool rearm;

	spin_lock_bh(&umem->lock);
	list_splice_init(&umem->cache.release, &old);
	/* The LRU list is ordered by last use: stop at the first recent one. */
	list_for_each_entry_safe(ent, tmp, &umem->cache.lru, lru) {
		if (time_before(now, ent->last_use + idle))
			break;
		if (atomic_read(&ent->inflight))
			continue;
		sodp_cent_unhash_locked(umem, ent);
		list_move_tail(&ent->lru, &old);
	}
	rearm = umem->cache.count;
	spin_unlock_bh(&umem->lock);

	sodp_cache_release_list(umem, &old);
	if (rearm)
		queue_delayed_work(sodp_wq, &umem->age_work, idle / 2 + 1);
}

/**
 * sodp_cache_destroy() - drop every cached page of a dying umem
 * @umem: the umem; its notifiers are removed and its works cancelled
 *
 * Waits for copies still in flight.
 *
 * Context: process context. May sleep.
 */
void sodp_cache_destroy(struct sodp_umem *umem)
{
	LIST_HEAD(all);

	spin_lock_bh(&umem->lock);
	sodp_cache_recall_locked(umem, 0, ULONG_MAX, &all);
	spin_unlock_bh(&umem->lock);
	sodp_cache_release_list(umem, &all);
	WARN_ON_ONCE(umem->cache.count);
	kfree(umem->cache.hash);
}
