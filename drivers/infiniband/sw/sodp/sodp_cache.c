// SPDX-License-Identifier: GPL-2.0
/*
 * The pinned fast-path cache: a bounded, aged set of page references taken
 * from valid mirror table entries, so that the data path copies through
 * kmap_local_page() without holding umem->lock during the copy and without
 * walking page tables.
 *
 * Each entry is a lease on one page: an in-flight count, a recalled flag
 * and the page reference. Entries are hashed by page number in an RCU hash
 * and freed after a grace period, so a lookup needs no lock.
 *
 * Lease (sodp_cache_lease_fast(), a cache hit): under rcu_read_lock() find
 * the entry, raise its in-flight count, full barrier, then check that it
 * is not recalled. If it is, drop the count and take the locked slow path
 * (sodp_cache_lease()), which also fills the cache on a miss.
 *
 * Retire (everything that stops new users of an entry: invalidation,
 * eviction, aging, release): under umem->lock set the recalled flag, full
 * barrier, then read the in-flight count. This is a store-buffering
 * (Dekker) pair with the lease: either the lease sees the flag and backs
 * off without touching the page, or the retire sees the count and does not
 * free the page until it drops (an invalidation waits for it; eviction and
 * aging clear the flag again and keep the entry). A lease that raised the
 * count and backed off may still be counted for a moment; that only delays
 * the retire. A lease under umem->lock (the slow path) is ordered against
 * every retire by the lock itself: all flag changes are made under it, and
 * a flag set transiently by eviction or aging is cleared before the lock is
 * dropped.
 *
 * The invalidate callback recalls the entries of its range this way (and
 * unhashes them) before it returns, waits for the in-flight count of those
 * entries only, marks written pages dirty and drops the references. Hence
 * no write lands in a page once the invalidation of that page has
 * returned. A non-blockable invalidation flags the entries and gives up
 * (returns false), clearing the flags again, if any is in flight.
 *
 * A hit does not move the entry in any list: it writes last_use only when
 * jiffies changed, and the dirty flag only once, so a warm page costs a
 * lookup and two atomic operations on one line. Eviction is therefore
 * approximate LRU (a clock: an entry used since it was last passed gets a
 * second chance), and aging scans the whole list.
 *
 * Idle entries never become long-term pins: the age work drops entries not
 * used for cache_idle_ms, and a full cache evicts an idle clean entry.
 *
 * References are dropped only while the page is known to be mapped, so
 * put_page() is never the last put and set_page_dirty() never races with
 * truncation:
 *
 *  - the invalidate callback runs before the mm unmaps the page;
 *  - everyone else (age work, eviction, release) retires an entry under
 *    umem->lock while it is still hashed: an invalidation of the page would
 *    have to recall it first. A dirty entry is first held (in-flight count)
 *    while set_page_dirty() runs without the lock, and freed afterwards only
 *    if nobody recalled, used or dirtied it meanwhile (sodp_cache_trim()).
 *    Eviction under the lock also takes dirty entries of anonymous pages:
 *    dirtying one only sets a flag (no filesystem callback, no lock), so
 *    it is safe in any context. In atomic context dirty file pages are
 *    left to the age work and the cache may grow to twice its bound.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/rculist.h>
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

	/* Lockless lookups may still walk through it until a grace period. */
	hlist_del_rcu(&ent->hnode);
	umem->cache.count--;
}

static void sodp_cent_touch(struct sodp_cent *ent, bool write)
{
	unsigned long now = jiffies;

	/* Written only when it changes: a hit should not dirty the line. */
	if (READ_ONCE(ent->last_use) != now)
		WRITE_ONCE(ent->last_use, now);
	if (write && !READ_ONCE(ent->dirty))
		WRITE_ONCE(ent->dirty, true);
}

static void sodp_cent_hold_locked(struct sodp_umem *umem,
				  struct sodp_cent *ent, bool write)
{
	lockdep_assert_held(&umem->lock);

	/*
	 * Raised under umem->lock, which every retire holds while it sets
	 * and tests @recalled: either the retire runs later and sees this
	 * count, or it ran before and unhashed the entry (we did not find
	 * it) or cleared the flag again. No further barrier is needed.
	 */
	atomic_inc(&ent->inflight);
	sodp_cent_touch(ent, write);
}

static void sodp_cent_free_rcu(struct rcu_head *head)
{
	kmem_cache_free(sodp_cent_cache,
			container_of(head, struct sodp_cent, rcu));
}

/* Drop the page reference; free the entry once no lookup can see it. */
static void sodp_cent_destroy(struct sodp_umem *umem, struct sodp_cent *ent)
{
	/* Pairs with get_page() in sodp_cache_lease(). */
	put_page(ent->page);
	sodp_count_held(umem, -1);
	/* Pairs with rcu_read_lock() in sodp_cache_lease_fast(). */
	call_rcu(&ent->rcu, sodp_cent_free_rcu);
}

/**
 * sodp_cent_free() - dirty and release the page of a recalled entry
 * @umem: the umem of the entry
 * @ent: an entry no user can reach any more
 * @unmapped: no notifier covers the page any more (a dying umem): it may
 *	be unmapped and truncated by now, so dirty it under the folio lock
 *
 * Without @unmapped, called by the invalidate callback before the mm unmaps the page, so
 * the folio is still mapped, and still in its mapping: truncation, page
 * cache invalidation and reclaim all unmap a folio (and so wait for this
 * callback) before they remove it from the mapping, which is what
 * folio_mark_dirty() asks of a caller without the folio lock. A folio of
 * a write-notified file mapping that an entry may dirty is also dirty
 * already: the write fault that made it writable dirtied it, and
 * writeback cleans it only after folio_mkclean(), whose invalidation
 * recalls the entry first. ext4_dirty_folio() therefore does not warn.
 *
 * Not set_page_dirty_lock(): many callers of the invalidation hold the
 * folio lock (truncation's unmap_mapping_folio(), reclaim, migration,
 * folio_mkclean()), and it may be atomic (a non-blockable invalidation).
 *
 * Context: without @unmapped, the invalidate callback: any context, the
 * folio lock may be held by the caller. With @unmapped, process context
 * (may sleep). No sodp lock held.
 */
static void sodp_cent_free(struct sodp_umem *umem, struct sodp_cent *ent,
			   bool unmapped)
{
	if (READ_ONCE(ent->dirty)) {
		if (unmapped)
			set_page_dirty_lock(ent->page);
		else
			set_page_dirty(ent->page);
	}
	sodp_cent_destroy(umem, ent);
}

/*
 * Stop new lockless users of a hashed entry. Succeeds, leaving the entry
 * recalled, if no other user than our own @holds is in flight (and, with
 * @clean, nobody dirtied it); otherwise leaves it as it was.
 */
static bool sodp_cent_retire_locked(struct sodp_umem *umem,
				    struct sodp_cent *ent, int holds,
				    bool clean)
{
	lockdep_assert_held(&umem->lock);

	WRITE_ONCE(ent->recalled, true);
	/*
	 * Pairs with smp_mb__after_atomic() in sodp_cache_lease_fast():
	 * either that lease sees @recalled and backs off, or we see its
	 * count here.
	 */
	smp_mb();
	/*
	 * Acquire pairs with atomic_dec_and_test() in sodp_cache_unlease():
	 * the copies and the dirty flag of the users we no longer count
	 * are visible.
	 */
	if (atomic_read_acquire(&ent->inflight) == holds &&
	    !(clean && READ_ONCE(ent->dirty)))
		return true;
	WRITE_ONCE(ent->recalled, false);
	return false;
}

/*
 * Free a retired, clean, hashed entry. Hashed means no invalidation of the
 * page has returned, so the page is still mapped and this put is not the
 * last one: safe under umem->lock, in any context.
 */
static void sodp_cent_free_locked(struct sodp_umem *umem,
				  struct sodp_cent *ent)
{
	lockdep_assert_held(&umem->lock);

	sodp_cent_unhash_locked(umem, ent);
	list_del(&ent->lru);
	sodp_cent_destroy(umem, ent);
}

/*
 * Free an idle entry that is clean or maps an anonymous page, if there is
 * one. A clock over the list: an entry used since the hand last passed it
 * is moved to the tail instead (second chance). Two rounds at most, so a
 * second pass finds the entries that were used only before the first.
 *
 * Dirtying an anonymous folio only sets its dirty flag (it has no mapping,
 * or the swap cache's, whose dirty_folio is a no-op), so it is done here
 * under umem->lock, even in softirq: a stream of RDMA writes into an MR
 * larger than the cache then keeps the cache at its bound. Dirty file
 * pages need set_page_dirty_lock() and are left to sodp_cache_trim().
 */
static bool sodp_cache_evict_locked(struct sodp_umem *umem)
{
	unsigned int budget = 2 * umem->cache.count;
	struct sodp_cent *ent, *tmp;
	unsigned long used;
	bool dirty;

	lockdep_assert_held(&umem->lock);

	list_for_each_entry_safe(ent, tmp, &umem->cache.lru, lru) {
		if (!budget--)
			break;
		used = READ_ONCE(ent->last_use);
		if (used != ent->lru_stamp) {
			ent->lru_stamp = used;
			list_move_tail(&ent->lru, &umem->cache.lru);
			continue;
		}
		if (atomic_read(&ent->inflight))
			continue;
		dirty = READ_ONCE(ent->dirty);
		if (dirty && !PageAnon(ent->page))
			continue;
		if (sodp_cent_retire_locked(umem, ent, 0, !dirty)) {
			if (dirty)
				set_page_dirty(ent->page);
			sodp_cent_free_locked(umem, ent);
			return true;
		}
	}
	return false;
}

/**
 * sodp_cache_lease_fast() - lease a cached page without umem->lock
 * @umem: the umem
 * @pgidx: absolute page number
 * @write: the caller will write to the page
 *
 * The cache-hit path: an RCU hash lookup and the in-flight count, see the
 * comment at the top of this file. Backs off (returns NULL) on a miss, an
 * entry that is not writable for @write, or one being retired.
 *
 * Context: any context that may call sodp_cache_lease(). Never sleeps.
 * Return: the leased entry, to pass to sodp_cache_unlease(), or NULL: use
 * sodp_cache_lease().
 */
struct sodp_cent *sodp_cache_lease_fast(struct sodp_umem *umem,
					unsigned long pgidx, bool write)
{
	struct sodp_cent *ent;

	rcu_read_lock();
	hlist_for_each_entry_rcu(ent, sodp_cache_bucket(umem, pgidx), hnode) {
		if (ent->pgidx != pgidx)
			continue;
		/* Only ever set, under umem->lock: false means slow path. */
		if (write && !READ_ONCE(ent->writable))
			break;
		atomic_inc(&ent->inflight);
		/*
		 * Pairs with smp_mb() in sodp_cent_retire_locked() and
		 * sodp_cache_recall_locked(): either the retire sees our
		 * count, or we see @recalled. Also orders the dirty flag
		 * below after the count, see sodp_cache_trim_pick_locked().
		 */
		smp_mb__after_atomic();
		if (READ_ONCE(ent->recalled)) {
			/* Still under RCU: the entry is not freed yet. */
			sodp_cache_unlease(umem, ent);
			break;
		}
		rcu_read_unlock();
		/* The count keeps the entry and its page from here on. */
		sodp_cent_touch(ent, write);
		return ent;
	}
	rcu_read_unlock();
	return NULL;
}

/**
 * sodp_cache_lease() - lease the page of a mirrored VA, the slow path
 * @umem: the umem
 * @pgidx: absolute page number
 * @write: the caller will write to the page
 * @atomic: atomic context: no sleeping allocation, no trimming
 * @entp: the leased entry, to pass to sodp_cache_unlease()
 *
 * For when sodp_cache_lease_fast() backed off. A cache hit raises the
 * in-flight count of the entry. A miss whose mirror entry is valid with the
 * needed permission takes a page reference and inserts a new entry,
 * evicting an idle clean one if the cache is full. If there is none, the
 * cache is trimmed after the insertion (sleepable) or by the age work
 * (@atomic; then the cache does not grow beyond twice its bound: -EAGAIN).
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
			WRITE_ONCE(ent->writable, true);
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
	ent->last_use = jiffies;
	ent->lru_stamp = ent->last_use;
	atomic_set(&ent->inflight, 0);
	/*
	 * The mirror entry is valid and we hold umem->lock, so the page is
	 * still mapped (its invalidation would need the lock) and has a
	 * reference to add to. Pairs with put_page() in sodp_cent_destroy().
	 */
	get_page(ent->page);
	sodp_count_held(umem, 1);
	/* Publishes the initialised entry to sodp_cache_lease_fast(). */
	hlist_add_head_rcu(&ent->hnode, sodp_cache_bucket(umem, pgidx));
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

/* Called right after a fully ordered atomic that made a count zero. */
static void sodp_cache_wake_recall(struct sodp_umem *umem)
{
	/*
	 * That atomic is wq_has_sleeper()'s smp_mb(): pairs with the one in
	 * prepare_to_wait_event() of sodp_cache_release_list()'s waiter.
	 */
	if (waitqueue_active(&umem->recall_wq))
		wake_up_all(&umem->recall_wq);
}

/**
 * sodp_cache_unlease() - end the use of a leased page
 * @umem: the umem
 * @ent: the entry returned by sodp_cache_lease() or sodp_cache_lease_fast()
 *
 * Context: any context the lease was taken in.
 */
void sodp_cache_unlease(struct sodp_umem *umem, struct sodp_cent *ent)
{
	/*
	 * atomic_dec_and_test() is fully ordered: the caller's accesses to
	 * the page and the dirty flag complete before the count drops. Pairs
	 * with atomic_read_acquire() in sodp_cache_release_list() and
	 * sodp_cent_retire_locked(). A recall may free @ent as soon as the
	 * count is zero, so only @umem is touched below.
	 */
	if (atomic_dec_and_test(&ent->inflight))
		sodp_cache_wake_recall(umem);
}

enum sodp_scan_op {
	SODP_SCAN_MARK,		/* set recalled */
	SODP_SCAN_UNMARK,	/* clear recalled */
	SODP_SCAN_BUSY,		/* count the entries in flight */
	SODP_SCAN_RECALL,	/* set recalled, unhash, move to a list */
};

static unsigned int sodp_cent_scan_locked(struct sodp_umem *umem,
					  struct sodp_cent *ent,
					  enum sodp_scan_op op,
					  struct list_head *out)
{
	switch (op) {
	case SODP_SCAN_MARK:
		WRITE_ONCE(ent->recalled, true);
		break;
	case SODP_SCAN_UNMARK:
		WRITE_ONCE(ent->recalled, false);
		break;
	case SODP_SCAN_BUSY:
		/* See sodp_cent_retire_locked() for the acquire. */
		return !!atomic_read_acquire(&ent->inflight);
	case SODP_SCAN_RECALL:
		WRITE_ONCE(ent->recalled, true);
		sodp_cent_unhash_locked(umem, ent);
		list_move_tail(&ent->lru, out);
		break;
	}
	return 1;
}

/*
 * Apply @op to the entries of [first, end): by hash for a range smaller
 * than the cache, by a walk of the list otherwise. Returns the sum of
 * sodp_cent_scan_locked().
 */
static unsigned int sodp_cache_scan_locked(struct sodp_umem *umem,
					   unsigned long first,
					   unsigned long end,
					   enum sodp_scan_op op,
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
			if (ent)
				n += sodp_cent_scan_locked(umem, ent, op, out);
		}
		return n;
	}

	list_for_each_entry_safe(ent, tmp, &umem->cache.lru, lru)
		if (ent->pgidx >= first && ent->pgidx < end)
			n += sodp_cent_scan_locked(umem, ent, op, out);
	return n;
}

/**
 * sodp_cache_quiesce_locked() - stop new users of a range if none is active
 * @umem: the umem
 * @first: first absolute page number
 * @end: end page number (exclusive)
 *
 * For non-blockable invalidations, which must not wait: flags the entries
 * of the range recalled, so that no new lockless lease starts, and checks
 * that none is in flight. If one is, clears the flags again.
 *
 * Context: any, holds umem->lock.
 * Return: true if no page of the range is in flight; the entries then stay
 * flagged for sodp_cache_recall_locked() in the same critical section, and
 * sodp_cache_release_list() need not wait for them. false if one is; then
 * nothing was changed.
 */
bool sodp_cache_quiesce_locked(struct sodp_umem *umem, unsigned long first,
			       unsigned long end)
{
	sodp_cache_scan_locked(umem, first, end, SODP_SCAN_MARK, NULL);
	/*
	 * Pairs with smp_mb__after_atomic() in sodp_cache_lease_fast(): a
	 * lease we do not count below sees the flag and backs off.
	 */
	smp_mb();
	if (!sodp_cache_scan_locked(umem, first, end, SODP_SCAN_BUSY, NULL))
		return true;
	sodp_cache_scan_locked(umem, first, end, SODP_SCAN_UNMARK, NULL);
	return false;
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
	unsigned int n;

	n = sodp_cache_scan_locked(umem, first, end, SODP_SCAN_RECALL, out);
	/*
	 * Pairs with smp_mb__after_atomic() in sodp_cache_lease_fast():
	 * either that lease sees @recalled, or sodp_cache_release_list()
	 * sees its count. spin_unlock_bh() is only a release.
	 */
	smp_mb();
	return n;
}

/*
 * Free recalled entries, first waiting for their in-flight copies if @wait;
 * @unmapped as for sodp_cent_free(). Returns how many were waited for.
 */
static unsigned int sodp_cache_free_list(struct sodp_umem *umem,
					 struct list_head *list, bool wait,
					 bool unmapped)
{
	struct sodp_cent *ent, *tmp;
	unsigned int nwaited = 0;

	list_for_each_entry_safe(ent, tmp, list, lru) {
		/*
		 * Pairs with atomic_dec_and_test() in sodp_cache_unlease().
		 * A count seen here after the barrier of the recall may also
		 * be a lease that is backing off: it drops soon.
		 */
		if (wait && atomic_read_acquire(&ent->inflight)) {
			nwaited++;
			wait_event(umem->recall_wq,
				   !atomic_read_acquire(&ent->inflight));
		}
		list_del(&ent->lru);
		sodp_cent_free(umem, ent, unmapped);
	}
	return nwaited;
}

/**
 * sodp_cache_release_list() - release unhashed cache entries
 * @umem: the umem
 * @list: the entries, recalled by sodp_cache_recall_locked()
 * @wait: wait for in-flight copies; false only after
 *	sodp_cache_quiesce_locked() found none
 *
 * Waits for the in-flight copies of each entry, marks the page dirty if it
 * was leased for writing, drops the page reference and frees the entry
 * after an RCU grace period. Waits only for copies of these pages (and
 * sodp_cache_trim() holding one while it dirties the page): never for a
 * fault or a peer.
 *
 * Context: process context, the pages still mapped (invalidate callback);
 * may sleep only if @wait and an entry is in flight.
 * Return: number of entries that had to be waited for.
 */
unsigned int sodp_cache_release_list(struct sodp_umem *umem,
				     struct list_head *list, bool wait)
{
	return sodp_cache_free_list(umem, list, wait, false);
}

#define SODP_TRIM_BATCH	32

/*
 * One round of sodp_cache_trim(): free the clean victims under the lock,
 * hold up to SODP_TRIM_BATCH dirty ones with their dirty flag cleared.
 * Returns true if there are more.
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
	/* Hits do not reorder the list: look at every entry. */
	list_for_each_entry_safe(ent, tmp, &umem->cache.lru, lru) {
		if (!all && !excess &&
		    time_before(now, READ_ONCE(ent->last_use) + idle))
			continue;
		if (atomic_read(&ent->inflight))
			continue;
		if (!READ_ONCE(ent->dirty)) {
			if (!sodp_cent_retire_locked(umem, ent, 0, true))
				continue;
			if (excess)
				excess--;
			sodp_cent_free_locked(umem, ent);
			continue;
		}
		if (*nbatch == SODP_TRIM_BATCH)
			return true;
		/* Take the flag for set_page_dirty() if no writer is active. */
		WRITE_ONCE(ent->dirty, false);
		/*
		 * Pairs with smp_mb__after_atomic() in sodp_cache_lease_fast():
		 * a writer we do not count sees the flag clear and sets it
		 * again, so sodp_cache_trim() keeps the entry.
		 */
		smp_mb();
		if (atomic_read(&ent->inflight)) {
			WRITE_ONCE(ent->dirty, true);
			continue;
		}
		/* Hold it hashed, so an invalidation waits for the dirtying. */
		atomic_inc(&ent->inflight);
		if (excess)
			excess--;
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

		/*
		 * Held and hashed: the page is still mapped and in its
		 * mapping, as an invalidation would wait for the hold first
		 * (see sodp_cent_free()). Not set_page_dirty_lock(): such an
		 * invalidation may hold the folio lock while it waits for
		 * this hold, and folio_lock() here would deadlock with it.
		 */
		for (i = 0; i < n; i++)
			set_page_dirty(batch[i]->page);

		spin_lock_bh(&umem->lock);
		for (i = 0; i < n; i++) {
			struct sodp_cent *ent = batch[i];

			/* Recalled: the invalidation frees it. */
			if (!ent->recalled &&
			    sodp_cent_retire_locked(umem, ent, 1, true))
				sodp_cent_free_locked(umem, ent);
			else
				sodp_cache_unlease(umem, ent);
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
 * only entries a buggy caller still had in flight are left. Waits for them
 * and marks their pages dirty under the folio lock.
 * The entries themselves are freed after an RCU grace period; the module
 * waits for those with rcu_barrier() before it destroys their slab cache.
 *
 * Context: process context. May sleep.
 */
void sodp_cache_destroy(struct sodp_umem *umem)
{
	LIST_HEAD(all);

	spin_lock_bh(&umem->lock);
	sodp_cache_recall_locked(umem, 0, ULONG_MAX, &all);
	spin_unlock_bh(&umem->lock);
	/*
	 * No notifier covers these pages any more, so one may be unmapped
	 * and truncated by now, and no invalidation can wait for us: dirty
	 * them under the folio lock.
	 */
	sodp_cache_free_list(umem, &all, true, true);
	WARN_ON_ONCE(umem->cache.count);
	kfree(umem->cache.hash);
}
