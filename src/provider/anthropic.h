/* SPDX-License-Identifier: MIT */
/*
 * The `anthropic` wire format (the Messages API), the second format behind
 * council__chat_start.  Same promises as the openai format (provider.h);
 * the body handlers are exposed so that tests and fuzz targets can feed
 * events directly.  Loop thread only.
 */
#ifndef COUNCIL_PROVIDER_ANTHROPIC_H
#define COUNCIL_PROVIDER_ANTHROPIC_H

#include "provider/call.h"

/* max_tokens is required by the Messages API: sent when the request
 * leaves it at 0. */
#define COUNCIL__ANTHROPIC_DEFAULT_MAX_TOKENS 1024
#define COUNCIL__ANTHROPIC_VERSION "2023-06-01"

extern const council__chat_ops council__anthropic_ops;

council_err council__anthropic_start(council__http *h,
                                     const council__provider_cfg *cfg,
                                     const council__chat_req *req,
                                     const council__chat_cbs *cbs, void *ud,
                                     council__chat **out);

#endif
