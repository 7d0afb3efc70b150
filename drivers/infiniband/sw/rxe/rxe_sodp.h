/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rxe memory regions served by sodp (software On-Demand Paging): the hooks
 * that the rxe patch series calls from the upstream files. Included from
 * rxe_loc.h, after rxe_verbs.h has defined the rxe types.
 */
#ifndef RXE_SODP_H
#define RXE_SODP_H

#include <linux/types.h>
#include <rdma/ib_verbs.h>

struct rxe_dev;
struct rxe_mr;
struct rxe_qp;
struct sk_buff;
struct uverbs_attr_bundle;

/**
 * rxe_mr_is_sodp() - does this MR reach its memory through sodp?
 * @mr: the memory region
 *
 * Return: true for ODP (and no-pin) user MRs.
 */
#define rxe_mr_is_sodp(mr) (!!(mr)->sodp)

bool rxe_sodp_wants_mr(struct rxe_dev *rxe, int access);
bool rxe_sodp_may_fallback(int err);
int rxe_sodp_mr_init_user(struct rxe_dev *rxe, u64 start, u64 length,
			  int access, struct rxe_mr *mr);
void rxe_sodp_mr_fence(struct rxe_mr *mr);
void rxe_sodp_qp_quiesce(struct rxe_qp *qp);
void rxe_sodp_mr_cleanup(struct rxe_mr *mr);
int rxe_sodp_check_rereg(struct rxe_mr *mr, int flags, int access);
int rxe_sodp_mr_copy(struct rxe_mr *mr, u64 iova, void *addr,
		     unsigned int length, enum rxe_mr_copy_dir dir);
int rxe_sodp_mr_atomic_op(struct rxe_mr *mr, u64 iova, int opcode,
			  u64 compare, u64 swap_add, u64 *orig_val);
int rxe_sodp_mr_atomic_write(struct rxe_mr *mr, u64 iova, u64 value);
int rxe_sodp_mr_flush(struct rxe_mr *mr, u64 iova, unsigned int length);
void rxe_sodp_init_device_param(struct rxe_dev *rxe);
int rxe_sodp_dev_init(struct rxe_dev *rxe);
void rxe_sodp_dev_cleanup(struct rxe_dev *rxe);
void rxe_sodp_get_hw_stats(struct rxe_dev *rxe, u64 *values);
int rxe_sodp_fill_stat_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr);
int rxe_sodp_advise_mr(struct ib_pd *ibpd,
		       enum ib_uverbs_advise_mr_advice advice, u32 flags,
		       struct ib_sge *sg_list, u32 num_sge,
		       struct uverbs_attr_bundle *attrs);

#endif /* RXE_SODP_H */
