// SPDX-License-Identifier: GPL-2.0
/*
 * The data path: copies to and from a umem, and single-page leases for
 * atomics and flushes. Every access is bounds-checked with overflow-safe
 * arithmetic before any translation. Pages are leased from the pinned cache
 * one at a time and copied through kmap_local_page() with no sodp lock
 * held; a miss faults (sleepable callers) or fails with -EAGAIN
 * (SODP_NOFAULT).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/jiffies.h>
#include <linux/mm.h>

#include "sodp_priv.h"
#include "sodp_trace.h"

static int sodp_access_check(struct sodp_umem *umem, u64 va, u64 len,
			     unsigned int flags, unsigned int allowed)
{
	u64 end;

	if (check_add_overflow(va, len, &end) || va < umem->va_start ||
	    end > umem->va_end)
		return -ERANGE;
	if (flags & ~allowed)
		return -EINVAL;
	if (!(flags & SODP_NOFAULT)) {
		/*
		 * Not might_sleep(): under voluntary preemption that is a
		 * cond_resched() on every access, and a driver copying a
		 * packet at a time (rxe's work loop) would yield per packet.
		 * The fault path, which really sleeps, reschedules itself.
		 */
		__might_sleep(__FILE__, __LINE__);
		might_lock(&umem->fault_mutex);
	}
	return 0;
}

/*
 * Lease the page of @pgidx, faulting it in when allowed. A fault may race
 * with an invalidation of the page it just published, so retry, bounded
 * like hmm_range_fault() users are. Before its first fault the call enters
 * the umem (*@entered is set): the caller leaves it with sodp_access_done()
 * once it no longer touches the umem, so that a release in the meantime
 * waits for it (see sodp_umem_fence()).
 */
static int sodp_page_lease(struct sodp_umem *umem, unsigned long pgidx,
			   bool write, unsigned int flags,
			   struct sodp_cent **entp, bool *entered)
{
	bool nofault = flags & SODP_NOFAULT;
	unsigned long timeout = 0;
	bool first = true;
	int ret;

	*entp = sodp_cache_lease_fast(umem, pgidx, write);
	if (likely(*entp)) {
		sodp_count(umem, SODP_CNT_CACHE_HITS, 1);
		trace_sodp_cache_hit(umem->id, (u64)pgidx << PAGE_SHIFT, write);
		return 0;
	}

	for (;;) {
		ret = sodp_cache_lease(umem, pgidx, write, nofault, entp);
		if (first) {
			if (!ret) {
				sodp_count(umem, SODP_CNT_CACHE_HITS, 1);
				trace_sodp_cache_hit(umem->id,
						     (u64)pgidx << PAGE_SHIFT,
						     write);
			} else {
				sodp_count(umem, SODP_CNT_CACHE_MISSES, 1);
				trace_sodp_cache_miss(umem->id,
						      (u64)pgidx << PAGE_SHIFT,
						      write);
			}
			first = false;
		}
		if (ret >= 0)
			return 0;
		if (ret != -ENOENT)
			return ret;
		if (nofault)
			return -EAGAIN;

		if (!timeout)
			timeout = jiffies +
				  msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
		else if (time_after(jiffies, timeout))
			return -EBUSY;
		if (!*entered) {
			ret = sodp_umem_enter(umem);
			if (ret)
				return ret;
			*entered = true;
		} else if (READ_ONCE(umem->dying)) {
			return -EFAULT;
		}
		ret = sodp_fault_page(umem, pgidx, write);
		if (ret)
			return ret;
	}
}

/* The last touch of @umem by a call that may have entered it. */
static int sodp_access_done(struct sodp_umem *umem, bool entered, int ret)
{
	if (entered)
		sodp_umem_leave(umem);
	return ret;
}

/**
 * sodp_umem_copy_to() - copy a kernel buffer into a umem
 * @umem: the umem
 * @va: destination virtual address in the mirrored process
 * @src: source buffer
 * @len: number of bytes
 * @flags: 0, or SODP_NOFAULT from atomic context
 *
 * Pages are written through short cache leases, marked dirty, and released
 * to the mm on its next invalidation or when idle. On error a prefix of the
 * range may have been written; retrying the whole copy is safe.
 *
 * Context: process context; softirq with SODP_NOFAULT. Without
 * SODP_NOFAULT it may sleep and takes umem->fault_mutex and mmap_lock on a
 * miss, so the caller must hold no access lease (sodp_umem_access_begin())
 * and no lock that an mm invalidation may need.
 * Return: 0, or -ERANGE, -EINVAL, -EFAULT, -EAGAIN (SODP_NOFAULT only),
 * -ENOMEM, -EBUSY; see include/rdma/sodp.h.
 */
int sodp_umem_copy_to(struct sodp_umem *umem, u64 va, const void *src,
		      size_t len, unsigned int flags)
{
	bool entered = false;
	struct sodp_cent *ent;
	int ret;

	ret = sodp_access_check(umem, va, len, flags, SODP_NOFAULT);
	if (ret)
		return ret;

	while (len) {
		size_t off = offset_in_page(va);
		size_t n = min_t(size_t, len, PAGE_SIZE - off);

		ret = sodp_page_lease(umem, va >> PAGE_SHIFT, true, flags,
				      &ent, &entered);
		if (ret)
			return sodp_access_done(umem, entered, ret);
		memcpy_to_page(ent->page, off, src, n);
		sodp_cache_unlease(umem, ent);

		src += n;
		va += n;
		len -= n;
	}
	return sodp_access_done(umem, entered, 0);
}
EXPORT_SYMBOL_GPL(sodp_umem_copy_to);

/**
 * sodp_umem_copy_from() - copy from a umem into a kernel buffer
 * @umem: the umem
 * @va: source virtual address in the mirrored process
 * @dst: destination buffer
 * @len: number of bytes
 * @flags: 0, or SODP_NOFAULT from atomic context
 *
 * Context: as sodp_umem_copy_to().
 * Return: as sodp_umem_copy_to().
 */
int sodp_umem_copy_from(struct sodp_umem *umem, u64 va, void *dst,
			size_t len, unsigned int flags)
{
	bool entered = false;
	struct sodp_cent *ent;
	int ret;

	ret = sodp_access_check(umem, va, len, flags, SODP_NOFAULT);
	if (ret)
		return ret;

	while (len) {
		size_t off = offset_in_page(va);
		size_t n = min_t(size_t, len, PAGE_SIZE - off);

		ret = sodp_page_lease(umem, va >> PAGE_SHIFT, false, flags,
				      &ent, &entered);
		if (ret)
			return sodp_access_done(umem, entered, ret);
		memcpy_from_page(dst, ent->page, off, n);
		sodp_cache_unlease(umem, ent);

		dst += n;
		va += n;
		len -= n;
	}
	return sodp_access_done(umem, entered, 0);
}
EXPORT_SYMBOL_GPL(sodp_umem_copy_from);

/**
 * sodp_umem_access_begin() - lease one page of a umem for direct access
 * @umem: the umem
 * @va: first byte to access
 * @len: number of bytes, 1 or more, not crossing a page boundary
 * @flags: SODP_WRITE if the caller writes, SODP_NOFAULT in atomic context
 * @acc: lease state, to pass to sodp_umem_access_end()
 * @kaddr: set to the kernel address of @va
 *
 * For atomics, atomic writes and flushes, which need a kernel address
 * rather than a copy. @kaddr is valid until sodp_umem_access_end(). An
 * invalidation of the page waits for the end of the lease, so keep it
 * short: between begin and end do not sleep, fault, call another sodp
 * function that may fault, or take a lock an mm invalidation may need.
 * Leases nest like kmap_local_page() (end them in reverse order).
 *
 * Context: process context; softirq with SODP_NOFAULT. See
 * sodp_umem_copy_to() for what a fault may take.
 * Return: 0 with the page leased, or -ERANGE, -EINVAL, -EFAULT, -EAGAIN
 * (SODP_NOFAULT only), -ENOMEM, -EBUSY; see include/rdma/sodp.h.
 */
int sodp_umem_access_begin(struct sodp_umem *umem, u64 va, size_t len,
			   unsigned int flags, struct sodp_access *acc,
			   void **kaddr)
{
	bool entered = false;
	struct sodp_cent *ent;
	int ret;

	ret = sodp_access_check(umem, va, len, flags,
				SODP_NOFAULT | SODP_WRITE);
	if (ret)
		return ret;
	if (!len || offset_in_page(va) + len > PAGE_SIZE)
		return -EINVAL;

	/* The lease itself is waited for by the cache, not by a fence. */
	ret = sodp_page_lease(umem, va >> PAGE_SHIFT, flags & SODP_WRITE,
			      flags, &ent, &entered);
	ret = sodp_access_done(umem, entered, ret);
	if (ret)
		return ret;

	acc->umem = umem;
	acc->cent = ent;
	acc->flags = flags;
	acc->kaddr = kmap_local_page(ent->page) + offset_in_page(va);
	*kaddr = acc->kaddr;
	return 0;
}
EXPORT_SYMBOL_GPL(sodp_umem_access_begin);

/**
 * sodp_umem_access_end() - end a lease taken by sodp_umem_access_begin()
 * @acc: the lease
 *
 * Context: the context sodp_umem_access_begin() was called in.
 */
void sodp_umem_access_end(struct sodp_access *acc)
{
	kunmap_local(acc->kaddr);
	if (acc->flags & SODP_WRITE)
		flush_dcache_page(acc->cent->page);
	sodp_cache_unlease(acc->umem, acc->cent);
}
EXPORT_SYMBOL_GPL(sodp_umem_access_end);

/**
 * sodp_umem_get_page() - take a transient reference on a page to read
 * @umem: the umem
 * @va: an address in the page
 * @flags: 0, or SODP_NOFAULT from atomic context
 *
 * For a driver that reads a page in a call that may sleep or allocate,
 * like siw mapping transmit payload for kernel_sendmsg() to copy into the
 * socket, where holding a lease could deadlock with an invalidation of
 * the same page. The page is leased just long enough to take a plain page
 * reference, like get_user_pages() without FOLL_LONGTERM: the reference
 * keeps the page from being freed, but it is not a lease. An invalidation
 * does not wait for it, the page may leave the mirror while it is held
 * (its migration, an FS-DAX truncate, wait until it is dropped), and the
 * data read through it is the data of the page at the time of the read.
 * Never write through it, never hand the page to anything that may keep
 * it (TCP zero copy, an skb frag, a bio: nothing outside sodp holds a
 * sodp page past the copy), and put_page() it as soon as the copy is
 * done.
 *
 * Context: as sodp_umem_copy_from().
 * Return: the page with a reference held, or an ERR_PTR() of the errors of
 * sodp_umem_copy_from().
 */
struct page *sodp_umem_get_page(struct sodp_umem *umem, u64 va,
				unsigned int flags)
{
	bool entered = false;
	struct sodp_cent *ent;
	struct page *page;
	int ret;

	ret = sodp_access_check(umem, va, 1, flags, SODP_NOFAULT);
	if (ret)
		return ERR_PTR(ret);

	ret = sodp_page_lease(umem, va >> PAGE_SHIFT, false, flags, &ent,
			      &entered);
	if (ret)
		return ERR_PTR(sodp_access_done(umem, entered, ret));
	page = ent->page;
	get_page(page);
	sodp_cache_unlease(umem, ent);
	sodp_access_done(umem, entered, 0);
	return page;
}
EXPORT_SYMBOL_GPL(sodp_umem_get_page);
