/* SPDX-License-Identifier: GPL-2.0 */
/*
 * siw memory regions served by sodp (software On-Demand Paging): the types
 * and hooks that the siw patch series uses from the upstream files.
 * Included from siw.h before struct siw_qp, which embeds struct siw_sodp_qp.
 * See Documentation/sodp/siw.rst.
 */
#ifndef _SIW_SODP_H
#define _SIW_SODP_H

#include <linux/types.h>
#include <linux/workqueue.h>
#include <rdma/ib_verbs.h>

struct ib_pd;
struct page;
struct sk_buff;
struct sock;
struct sodp_umem;
struct rdma_hw_stats;
struct siw_device;
struct siw_mem;
struct siw_qp;
struct siw_rx_stream;
struct siw_wqe;
struct uverbs_attr_bundle;

/**
 * struct siw_sodp_qp - sodp state of one QP
 * @rx_work: the receive deferral: faults the missing page in, then
 *	resumes reading the socket
 * @rx_mem: MR of the pending miss (holds a reference while deferred)
 * @rx_sk: socket of the QP (holds a reference while deferred)
 * @rx_va: user virtual address of the missing byte
 * @rx_len: bytes from @rx_va on that the incoming message is known to
 *	place there (at least 1): the deferral write-faults no more
 * @rx_bytes: bytes placed into sodp MRs by this QP, to tell progress
 * @rx_last_va: page of the previous miss
 * @rx_last_bytes: @rx_bytes at the previous miss
 * @rx_fail_va: page of the last deferred fault (valid if @rx_failed)
 * @rx_retries: consecutive misses of @rx_last_va without progress
 * @rx_deferred: a deferral is pending; the receive path consumes nothing
 * @rx_faulted: the pending deferral has done its fault
 * @rx_failed: the last deferred fault, of @rx_fail_va, failed: if the
 *	resumed receive misses that page again, the QP is terminated.
 *	Cleared by the next miss, whatever its page, and by any byte placed
 * @tx_work: the transmit deferral: faults a page the siw_tx thread found
 *	missing, then starts the send queue again
 * @tx_mem: MR of the pending transmit miss (holds a reference)
 * @tx_va: user virtual address of the missing byte
 * @tx_len: bytes of the WQE's SGE from @tx_va on (at least 1): the
 *	deferral faults no more
 * @tx_retry_va: page the last transmit deferral faulted (or failed to):
 *	the next access to it faults in place, once, so that a page the mm
 *	keeps taking away, or a fault that fails, still ends in data or in
 *	an error; ~0 for none
 * @tx_pending: a transmit deferral is queued or running
 *
 * The rx_* fields are written by the receive path, which runs under the
 * socket lock (softirq with the socket spinlock, or a lock_sock() owner),
 * and by the deferral work while @rx_deferred is set: then the receive path
 * does not touch them. The tx_* fields are written by the transmit path in
 * the siw_tx thread while @tx_pending is clear, and read by the transmit
 * deferral work while it is set (@tx_retry_va: written by the work before
 * it starts the send queue, read by the transmit path after).
 */
struct siw_sodp_qp {
	struct delayed_work rx_work;
	struct siw_mem *rx_mem;
	struct sock *rx_sk;
	u64 rx_va;
	u64 rx_len;
	u64 rx_bytes;
	u64 rx_last_va;
	u64 rx_last_bytes;
	u64 rx_fail_va;
	unsigned int rx_retries;
	bool rx_deferred;
	bool rx_faulted;
	bool rx_failed;
	struct work_struct tx_work;
	struct siw_mem *tx_mem;
	u64 tx_va;
	u64 tx_len;
	u64 tx_retry_va;
	bool tx_pending;
};

/**
 * siw_sodp_rx_deferred() - is the receive path of a QP waiting for a fault?
 * @qp: the QP
 *
 * Context: the receive path (socket lock held).
 * Return: true while a receive deferral is pending.
 */
#define siw_sodp_rx_deferred(qp) ((qp)->sodp.rx_deferred)

int siw_sodp_init(void);
void siw_sodp_exit(void);

bool siw_sodp_wants_mr(int access);
bool siw_sodp_may_fallback(int err);
struct sodp_umem *siw_sodp_umem_get(struct siw_device *sdev, u64 start,
				    u64 len, int access);
void siw_sodp_umem_release(struct sodp_umem *umem);
void siw_sodp_mem_free(struct siw_mem *mem);

void siw_sodp_qp_init(struct siw_qp *qp);
void siw_sodp_qp_destroy(struct siw_qp *qp);

bool siw_sodp_wqe_uses_sodp(struct siw_wqe *wqe);
int siw_sodp_tx_copy(struct siw_qp *qp, struct siw_mem *mem, u64 va,
		     void *dst, unsigned int len);
struct page *siw_sodp_tx_get_page(struct siw_qp *qp, struct siw_mem *mem,
				  u64 va, u64 len);
void siw_sodp_tx_put_pages(struct page **pages, unsigned long mask, int n);

int siw_sodp_rx_mem(struct siw_rx_stream *srx, struct siw_mem *mem, u64 va,
		    int len);

int siw_sodp_dev_init(struct siw_device *sdev);
void siw_sodp_dev_cleanup(struct siw_device *sdev);
struct rdma_hw_stats *siw_sodp_alloc_hw_port_stats(struct ib_device *ibdev,
						   u32 port_num);
int siw_sodp_get_hw_stats(struct ib_device *ibdev,
			  struct rdma_hw_stats *stats, u32 port_num,
			  int index);

void siw_sodp_query_device(struct ib_device_attr *attr);
int siw_sodp_fill_stat_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr);
int siw_sodp_advise_mr(struct ib_pd *pd,
		       enum ib_uverbs_advise_mr_advice advice, u32 flags,
		       struct ib_sge *sg_list, u32 num_sge,
		       struct uverbs_attr_bundle *attrs);

#endif /* _SIW_SODP_H */
