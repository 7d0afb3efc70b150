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
 *
 * References are dropped only while the page is known to be mapped, so
 * put_page() is never the last put and set_page_dirty() never races with
 * truncation:
 *
 *  - the invalidate callback runs before the mm unmaps the page;
 *  - everyone else (age work, eviction, release) drops an entry under
 *    umem->lock while it is still hashed: an invalidation of the page would
 *    have to recall it first. A dirty entry is first held (in-flight count)
 *    while set_page_dirty() runs without the lock, and freed afterwards only
 *    if nobody recalled, used or dirtied it meanwhile (sodp_cache_trim()).
 *    In atomic context only clean entries can be evicted; dirty ones are
 *    left to the age work and the cache may grow to twice its bound.
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

/*
 * Drop the reference of an entry no user can reach any more, from the
 * invalidate callback, before the mm unmaps the page.
 */
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

/*
 * Free an idle, clean, hashed entry. Hashed means no invalidation of the
 * page has returned, so the page is still mapped and this put is not the
 * last one: safe under umem->lock, in any context.
 */
static void sodp_cent_free_locked(struct sodp_umem *umem,
				  struct sodp_cent *ent)
{
	lockdep_assert_held(&umem->lock);

	sodp_cent_unhash_locked(umem, ent);
	list_del(&ent->lru);
	/* Pairs with get_page() in sodp_cache_lease(). */
	put_page(ent->page);
	atomic64_dec(&sodp_pages_held);
	kmem_cache_free(sodp_cent_cache, ent);
}

/* Free the least recently used idle clean entry, if there is one. */
static bool sodp_cache_evict_locked(struct sodp_umem *umem)
{
	struct sodp_cent *ent;

	lockdep_assert_held(&umem->lock);

	list_for_each_entry(ent, &umem->cache.lru, lru) {
		/* Raised only under umem->lock: an idle entry stays idle. */
		if (atomic_read(&ent->inflight) || ent->dirty)
			continue;
		sodp_cent_free_locked(umem, ent);
		return true;
	}
	return false;
}

/**
 * sodp_cache_lease() - lease the page of a mirrored VA from the cache
 * @umem: the umem
 * @pgidx: absolute page number
 * @write: the caller will write to the page
 * @atomic: atomic context: no sleeping allocation, no trimming
 * @entp: the leased entry, to pass to sodp_cache_unlease()
 *
 * A cache hit raises the in-flight count of the entry. A miss whose mirror
 * entry is valid with the needed permission takes a page reference and
 * inserts a new entry, evicting the least recently used idle clean one if
 * the cache is full. If there is none, the cache is trimmed after the
 * insertion (sleepable) or by the age work (@atomic; then the cache does not
 * grow beyond twice its bound: -EAGAIN).
 *
 * Context: process context, or softirq with @atomic. Takes umem->lock.
 * Return: 0 on a cache hit, 1 when the lease was filled from the mirror
 * table, -ENOENT when the page must be faulted first, -EAGAIN (@atomic)
 * or -ENOMEM when no entry could be allocated or the cache is full.
 */
int sodp_cache_lease(struct sodp_umem *umem, unsigned long pgidx,
		     bool write, bool atomic, struct sodp_cent **entp)
{
	struct sodp_cent *ent, *spare = NULL;
	bool trim = false;
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
	if (umem->cache.count >= umem->cache.max &&
	    !sodp_cache_evict_locked(umem)) {
		/* Only dirty or busy entries: trim them without the lock. */
		if (atomic && umem->cache.count >= 2 * umem->cache.max) {
			mod_delayed_work(sodp_wq, &umem->age_work, 0);
			ret = -EAGAIN;
			goto out_unlock;
		}
		trim = true;
	}
	ent = spare;
	spare = NULL;

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
	if (trim && atomic)
		mod_delayed_work(sodp_wq, &umem->age_work, 0);
	else if (trim)
		sodp_cache_trim(umem, false);
	if (ret == 1)
		/* A no-op while the work is pending. */
		queue_delayed_work(sodp_wq, &umem->age_work,
				   sodp_param_idle_jiffies());
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
 * Marks the entries recalled and unhashes them. The caller must pass @out
 * to sodp_cache_release_list() after dropping umem->lock, before the pages
 * may be unmapped (that is, from the invalidate callback).
 *
 * Context: any, holds umem->lock.
 * Return: number of entries of the range recalled.
 */
unsigned int sodp_cache_recall_locked(struct sodp_umem *umem,
				      unsigned long first, unsigned long end,
				      struct list_head *out)
{
	return sodp_cache_scan_locked(umem, first, end, out);
}

/**
 * sodp_cache_release_list() - release unhashed cache entries
 * @umem: the umem
 * @list: the entries, reachable by no new user
 *
 * Waits for the in-flight copies of each entry, marks the page dirty if it
 * was leased for writing, drops the page reference and frees the entry.
 * Waits only for copies of these pages (and sodp_cache_trim() holding one
 * while it dirties the page): never for a fault or a peer.
 *
 * Context: process context, the pages still mapped (invalidate callback);
 * may sleep only if an entry is in flight.
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

#define SODP_TRIM_BATCH	32

/*
 * One round of sodp_cache_trim(): free the clean victims under the lock,
 * hold up to SODP_TRIM_BATCH dirty ones. Returns true if there are more.
 */
static bool sodp_cache_trim_pick_locked(struct sodp_umem *umem, bool all,
					struct sodp_cent **batch,
					unsigned int *nbatch)
{
	unsigned long idle = sodp_param_idle_jiffies();
	unsigned long now = jiffies;
	struct sodp_cent *ent, *tmp;
	unsigned int excess;

	lockdep_assert_held(&umem->lock);

	excess = umem->cache.count > umem->cache.max ?
		 umem->cache.count - umem->cache.max : 0;
	*nbatch = 0;
	list_for_each_entry_safe(ent, tmp, &umem->cache.lru, lru) {
		/* The LRU list is ordered by last use. */
		if (!all && !excess && time_before(now, ent->last_use + idle))
			return false;
		if (atomic_read(&ent->inflight))
			continue;
		if (excess)
			excess--;
		if (!ent->dirty) {
			sodp_cent_free_locked(umem, ent);
			continue;
		}
		if (*nbatch == SODP_TRIM_BATCH)
			return true;
		/* Hold it hashed, so an invalidation waits for the dirtying. */
		atomic_inc(&ent->inflight);
		ent->dirty = false;
		batch[(*nbatch)++] = ent;
	}
	return false;
}

/**
 * sodp_cache_trim() - drop idle entries and bring the cache to its bound
 * @umem: the umem
 * @all: drop every idle entry, not only those unused for cache_idle_ms or
 *	in excess of the bound
 *
 * Dirty entries are held while set_page_dirty() runs without the lock and
 * freed afterwards unless they were recalled (the invalidation frees them),
 * leased or dirtied again (kept) meanwhile.
 *
 * Context: process context, no sodp lock held.
 */
void sodp_cache_trim(struct sodp_umem *umem, bool all)
{
	struct sodp_cent *batch[SODP_TRIM_BATCH];
	unsigned int i, n;
	bool more;

	do {
		spin_lock_bh(&umem->lock);
		more = sodp_cache_trim_pick_locked(umem, all, batch, &n);
		spin_unlock_bh(&umem->lock);
		if (!n)
			break;

		/* Held and hashed: the page is still mapped. */
		for (i = 0; i < n; i++)
			set_page_dirty(batch[i]->page);

		spin_lock_bh(&umem->lock);
		for (i = 0; i < n; i++) {
			struct sodp_cent *ent = batch[i];

			if (ent->recalled || ent->dirty ||
			    atomic_read(&ent->inflight) > 1)
				/* Recalled: the invalidation frees it. */
				sodp_cache_unlease(umem, ent);
			else
				sodp_cent_free_locked(umem, ent);
		}
		spin_unlock_bh(&umem->lock);
		cond_resched();
	} while (more);
}

/**
 * sodp_cache_age_work() - drop idle cache entries
 * @work: umem->age_work
 *
 * Drops the entries not used for cache_idle_ms and those in excess of the
 * bound, then runs again after half the idle time while the cache is not
 * empty. An idle entry is thus dropped at most 1.5 * cache_idle_ms (plus
 * workqueue latency) after its last use.
 *
 * Context: workqueue (process context).
 */
void sodp_cache_age_work(struct work_struct *work)
{
	struct sodp_umem *umem = container_of(to_delayed_work(work),
					      struct sodp_umem, age_work);
	unsigned int count;

	sodp_cache_trim(umem, false);

	spin_lock_bh(&umem->lock);
	count = umem->cache.count;
	spin_unlock_bh(&umem->lock);
	if (count)
		queue_delayed_work(sodp_wq, &umem->age_work,
				   sodp_param_idle_jiffies() / 2 + 1);
}

/**
 * sodp_cache_destroy() - drop every cached page of a dying umem
 * @umem: the umem; its notifiers are removed and its works cancelled
 *
 * sodp_umem_release() trims the cache while the notifiers still run, so
 * only entries a buggy caller still had in flight are left. Waits for them.
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
