#!lua name=council_v1
-- SPDX-License-Identifier: MIT
--
-- The council Redis Functions library (DISTRIBUTED.md section 4).  Every
-- step of a distributed run that checks state and then writes is one
-- function here, so it is atomic: Redis runs one function at a time, to
-- the end, with no other command in between.  Times come from Redis TIME
-- (milliseconds), never from a caller's clock.  Event JSON is opaque here:
-- it is stored as given (the caller, in C, renders it with the right seq).
-- The C side is src/bus/fn.h; it embeds this text at build time and loads
-- it with FUNCTION LOAD, checking VERSION first (council_v1_version).
--
-- Keys (R = run id):
--   council:q           stream of {run=R}, consumer group "workers"
--   council:run:R       hash: state, gen, owner, last_seq, cancel, spec,
--                       created_by, created_ms, claimed_ms, ended_ms, reason
--   council:run:R:ev    stream, entry ids 0-<seq>; fields:
--                         ev       the event JSON (absent in a terminal
--                                  written by reap, and in a crashed
--                                  terminal finish was given no event for)
--                         outcome  only in the terminal entry: ok,
--                                  cancelled, error or crashed
--                         reason   only in the terminal entry (may be "")
--                         ts_ms    only in the terminal entry: Redis time
--   council:leases      sorted set: member R, score = lease deadline (ms)
--   channels council:cancel and council:done (message: R)
-- States: queued, running, then one terminal: ok, cancelled, error, crashed.
--
-- Functions (FCALL name numkeys KEYS... ARGV...).  Replies are arrays
-- whose first element is a status string; malformed arguments or a
-- corrupted hash give an error reply starting "COUNCIL " that names the
-- key.
--
-- council_v1_enqueue  KEYS: council:run:R, council:q
--                     ARGV: R, spec JSON, created_by
--   -> {"created", "queued"} | {"exists", state}
-- council_v1_claim    KEYS: council:run:R, council:leases
--                     ARGV: R, worker, lease_ms
--   -> {"claimed", gen, spec} | {"skip", state} | {"notfound"}
--      (skip: running, or terminal; the caller XACKs only)
-- council_v1_append   KEYS: council:run:R, council:run:R:ev
--                     ARGV: R, gen, seq, ev_1 [, ev_2 ...]
--   ev_i has seq + i - 1.
--   -> {"ok", last_seq} | {"dup", last_seq} | {"gap", last_seq}
--    | {"fenced", gen, state} | {"notfound"}
--   ok: at least one event was new (those already there are skipped);
--   dup: all were already there (a retry); gap: seq > last_seq + 1,
--   nothing written; fenced: gen differs or the run is not running.
-- council_v1_renew    KEYS: council:leases, council:run:R_1, ... R_n
--                     ARGV: worker, lease_ms, R_1, gen_1, ..., R_n, gen_n
--   -> {status_1, cancel_1, ..., status_n, cancel_n}
--   status_i "ok" (lease extended; cancel_i is 1 when a cancel was asked,
--   else 0), "fenced" or "notfound" (cancel_i 0).
-- council_v1_finish   KEYS: council:run:R, council:run:R:ev, council:leases
--                     ARGV: R, gen, seq, terminal JSON, outcome, reason,
--                           expire_s
--   -> as append ({"dup", last_seq}: this very terminal is already there)
--   The terminal JSON may be "" only for outcome crashed.
-- council_v1_cancel   KEYS: council:run:R, council:run:R:ev
--                     ARGV: R, terminal JSON (seq 1), reason, expire_s
--   -> {"cancelled"} (was queued: ended now, the terminal at seq 1)
--    | {"flagged"} (running: flag set, PUBLISH council:cancel R)
--    | {"terminal", state} | {"notfound"}
-- council_v1_reap     KEYS: council:leases
--                     ARGV: limit, expire_s
--   -> {{R ...reaped}, {R ...dropped}}
--   reaped: lease past its deadline; gen + 1, terminal entry
--   {outcome=crashed|cancelled, reason="worker lost"}.  dropped: a lease
--   whose run hash is gone, corrupted or not running (Redis lost data):
--   the lease is removed and the run reported, nothing else written; or
--   a running run whose stream already holds last_seq + 1 (the stream
--   and the hash disagree): it is ended in the hash alone (gen + 1,
--   state, reason, expiry, PUBLISH council:done) and reported.
-- council_v1_version  no keys, no arguments (FCALL_RO) -> VERSION
--
-- Cluster: enqueue, claim, append, renew, finish and cancel name every key
-- they touch in KEYS.  reap cannot: it finds its runs in council:leases
-- and derives their keys, so the library needs one Redis primary (the
-- design's assumption) and is not cluster-safe.
--
-- One reaper at a time: reap is a function, so two reap calls never
-- interleave; the second sees the leases the first removed and the state
-- it wrote, and cannot reap the same run again.  No lock is needed.

local VERSION = 1
local DEFAULT_EXPIRE_S = 7 * 24 * 3600
local Q = 'council:q'
local LEASES = 'council:leases'

local function fail(fn, key, msg)
    return redis.error_reply('COUNCIL council_v1_' .. fn .. ': ' .. key ..
                             ': ' .. msg)
end

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A non-negative integer from a decimal string, or nil.
local function uint(s)
    if type(s) ~= 'string' or not string.match(s, '^%d+$') or #s > 15 then
        return nil
    end
    return tonumber(s)
end

local function run_key(r)
    return 'council:run:' .. r
end

local function is_terminal(state)
    return state == 'ok' or state == 'cancelled' or state == 'error' or
           state == 'crashed'
end

local KNOWN = {queued = true, running = true, ok = true, cancelled = true,
               error = true, crashed = true}

-- The fields every function relies on, checked; returns (h, nil) or
-- (nil, error reply).  h = nil, nil when the hash does not exist.
local function load_run(fn, key)
    local v = redis.pcall('HMGET', key, 'state', 'gen', 'last_seq',
                          'cancel', 'owner')
    if type(v) == 'table' and v.err then
        return nil, fail(fn, key, v.err)
    end
    if v[1] == false and v[2] == false and v[3] == false then
        if redis.call('EXISTS', key) == 0 then
            return nil, nil
        end
    end
    if v[1] == false then
        return nil, fail(fn, key, 'the run hash has no state field')
    end
    if not KNOWN[v[1]] then
        return nil, fail(fn, key, 'unknown state "' .. v[1] .. '"')
    end
    local gen, last = uint(v[2]), uint(v[3])
    if gen == nil then
        return nil, fail(fn, key, 'field gen is missing or not an integer')
    end
    if last == nil then
        return nil, fail(fn, key,
                         'field last_seq is missing or not an integer')
    end
    return {state = v[1], gen = gen, last_seq = last,
            cancel = v[4] == '1', owner = v[5] or ''}, nil
end

local function expire_arg(s)
    if s == nil or s == '' then
        return DEFAULT_EXPIRE_S
    end
    local n = uint(s)
    if n == nil or n < 1 then
        return nil
    end
    return n
end

-- Ends a run: the terminal entry at seq, the state, no lease, the expiry,
-- PUBLISH council:done.  fields: the stream entry's field/value list.
local function write_terminal(fn, key, evkey, r, seq, fields, state, reason,
                              expire_s, now)
    local args = {'XADD', evkey, '0-' .. seq}
    for _, f in ipairs(fields) do
        args[#args + 1] = f
    end
    local ok = redis.pcall(unpack(args))
    if type(ok) == 'table' and ok.err then
        return fail(fn, evkey, 'cannot write the terminal at seq ' .. seq ..
                    ': ' .. ok.err)
    end
    redis.call('HSET', key, 'state', state, 'last_seq', seq, 'reason',
               reason, 'ended_ms', now)
    redis.call('ZREM', LEASES, r)
    redis.call('EXPIRE', key, expire_s)
    redis.call('EXPIRE', evkey, expire_s)
    redis.call('PUBLISH', 'council:done', r)
    return nil
end

local function enqueue(keys, args)
    local key, r = keys[1], args[1]
    if #keys ~= 2 or #args ~= 3 then
        return fail('enqueue', key or '?',
                    'needs 2 keys and 3 arguments (run id, spec, created_by)')
    end
    local h, err = load_run('enqueue', key)
    if err then
        return err
    end
    if h then
        return {'exists', h.state}
    end
    local now = now_ms()
    redis.call('HSET', key, 'state', 'queued', 'gen', 0, 'last_seq', 0,
               'cancel', 0, 'owner', '', 'spec', args[2], 'created_by',
               args[3], 'created_ms', now)
    redis.call('XADD', keys[2], '*', 'run', r)
    return {'created', 'queued'}
end

local function claim(keys, args)
    local key = keys[1]
    if #keys ~= 2 or #args ~= 3 then
        return fail('claim', key or '?',
                    'needs 2 keys and 3 arguments (run id, worker, lease_ms)')
    end
    local lease = uint(args[3])
    if lease == nil or lease < 1 then
        return fail('claim', key, 'lease_ms must be a positive integer')
    end
    local h, err = load_run('claim', key)
    if err then
        return err
    end
    if not h then
        return {'notfound'}
    end
    if h.state ~= 'queued' then
        return {'skip', h.state}
    end
    local spec = redis.call('HGET', key, 'spec')
    if not spec then
        return fail('claim', key, 'the run hash has no spec field')
    end
    local now, gen = now_ms(), h.gen + 1
    redis.call('HSET', key, 'state', 'running', 'gen', gen, 'owner', args[2],
               'claimed_ms', now)
    redis.call('ZADD', keys[2], now + lease, args[1])
    return {'claimed', gen, spec}
end

-- The run for append and finish.  Returns (h, reply): a reply (an error,
-- or notfound) ends the call with it.
local function run_for_write(fn, key)
    local h, err = load_run(fn, key)
    if err then
        return nil, err
    end
    if not h then
        return nil, {'notfound'}
    end
    return h, nil
end

local function append(keys, args)
    local key, evkey = keys[1], keys[2]
    if #keys ~= 2 or #args < 4 then
        return fail('append', key or '?', 'needs 2 keys and at least 4 ' ..
                    'arguments (run id, gen, seq, events...)')
    end
    local gen, seq = uint(args[2]), uint(args[3])
    if gen == nil or seq == nil or seq < 1 then
        return fail('append', key, 'gen and seq must be integers, seq >= 1')
    end
    local h, reply = run_for_write('append', key)
    if reply then
        return reply
    end
    if h.gen ~= gen or h.state ~= 'running' then
        return {'fenced', h.gen, h.state}
    end
    if seq > h.last_seq + 1 then
        return {'gap', h.last_seq}
    end
    local n = #args - 3
    local last = h.last_seq
    for i = 1, n do
        local s = seq + i - 1
        if s > last then
            local ok = redis.pcall('XADD', evkey, '0-' .. s, 'ev',
                                   args[3 + i])
            if type(ok) == 'table' and ok.err then
                if last ~= h.last_seq then
                    redis.call('HSET', key, 'last_seq', last)
                end
                return fail('append', evkey, 'cannot write seq ' .. s ..
                            ' (last_seq ' .. last .. '): ' .. ok.err)
            end
            last = s
        end
    end
    if last == h.last_seq then
        return {'dup', last}
    end
    redis.call('HSET', key, 'last_seq', last)
    return {'ok', last}
end

local function renew(keys, args)
    local lease = uint(args[2])
    if #args < 2 or (#args - 2) % 2 ~= 0 or #keys ~= 1 + (#args - 2) / 2 then
        return fail('renew', keys[1] or '?', 'needs council:leases and a ' ..
                    'run key per run; worker, lease_ms, then run id + gen ' ..
                    'pairs')
    end
    if lease == nil or lease < 1 then
        return fail('renew', keys[1], 'lease_ms must be a positive integer')
    end
    local out = {}
    local now = now_ms()
    for i = 1, (#args - 2) / 2 do
        local r, gen = args[1 + 2 * i], uint(args[2 + 2 * i])
        local key = keys[1 + i]
        if gen == nil then
            return fail('renew', key, 'gen must be an integer')
        end
        if key ~= run_key(r) then
            return fail('renew', key, 'is not the key of run ' .. r)
        end
        local h, err = load_run('renew', key)
        if err then
            return err
        end
        if not h then
            out[#out + 1] = 'notfound'
            out[#out + 1] = 0
        elseif h.gen ~= gen or h.state ~= 'running' or
               h.owner ~= args[1] then
            out[#out + 1] = 'fenced'
            out[#out + 1] = 0
        else
            redis.call('ZADD', keys[1], now + lease, r)
            out[#out + 1] = 'ok'
            out[#out + 1] = h.cancel and 1 or 0
        end
    end
    return out
end

local OUTCOMES = {ok = true, cancelled = true, error = true, crashed = true}

local function finish(keys, args)
    local key, evkey = keys[1], keys[2]
    if #keys ~= 3 or #args ~= 7 then
        return fail('finish', key or '?', 'needs 3 keys and 7 arguments ' ..
                    '(run id, gen, seq, terminal, outcome, reason, expire_s)')
    end
    local gen, seq = uint(args[2]), uint(args[3])
    local ev, outcome, reason = args[4], args[5], args[6]
    local expire_s = expire_arg(args[7])
    if gen == nil or seq == nil or seq < 1 then
        return fail('finish', key, 'gen and seq must be integers, seq >= 1')
    end
    if not OUTCOMES[outcome] then
        return fail('finish', key, 'unknown outcome "' .. outcome .. '"')
    end
    if ev == '' and outcome ~= 'crashed' then
        return fail('finish', key, 'an empty terminal event is only for ' ..
                    'outcome crashed')
    end
    if expire_s == nil then
        return fail('finish', key, 'expire_s must be a positive integer')
    end
    local h, reply = run_for_write('finish', key)
    if reply then
        return reply
    end
    if h.gen == gen and h.state == outcome and h.last_seq == seq then
        return {'dup', seq}
    end
    if h.gen ~= gen or h.state ~= 'running' then
        return {'fenced', h.gen, h.state}
    end
    if seq > h.last_seq + 1 then
        return {'gap', h.last_seq}
    end
    if seq <= h.last_seq then
        return fail('finish', evkey, 'the terminal at seq ' .. seq ..
                    ' would not be last: last_seq is ' .. h.last_seq)
    end
    local now = now_ms()
    local fields = {'outcome', outcome, 'reason', reason, 'ts_ms', now}
    if ev ~= '' then
        table.insert(fields, 1, ev)
        table.insert(fields, 1, 'ev')
    end
    local err = write_terminal('finish', key, evkey, args[1], seq, fields,
                               outcome, reason, expire_s, now)
    if err then
        return err
    end
    return {'ok', seq}
end

local function cancel(keys, args)
    local key, evkey = keys[1], keys[2]
    if #keys ~= 2 or #args ~= 4 then
        return fail('cancel', key or '?', 'needs 2 keys and 4 arguments ' ..
                    '(run id, terminal, reason, expire_s)')
    end
    local expire_s = expire_arg(args[4])
    if expire_s == nil then
        return fail('cancel', key, 'expire_s must be a positive integer')
    end
    local h, err = load_run('cancel', key)
    if err then
        return err
    end
    if not h then
        return {'notfound'}
    end
    if is_terminal(h.state) then
        return {'terminal', h.state}
    end
    if h.state == 'running' then
        redis.call('HSET', key, 'cancel', 1)
        redis.call('PUBLISH', 'council:cancel', args[1])
        return {'flagged'}
    end
    -- queued: no worker has it; it ends here, its terminal event at seq 1
    -- (a queued run has no event yet).
    if args[2] == '' then
        return fail('cancel', key, 'a queued run needs its terminal event')
    end
    if h.last_seq ~= 0 then
        return fail('cancel', key, 'a queued run with last_seq ' ..
                    h.last_seq)
    end
    local now = now_ms()
    err = write_terminal('cancel', key, evkey, args[1], 1,
                         {'ev', args[2], 'outcome', 'cancelled', 'reason',
                          args[3], 'ts_ms', now},
                         'cancelled', args[3], expire_s, now)
    if err then
        return err
    end
    redis.call('HSET', key, 'cancel', 1)
    return {'cancelled'}
end

local function reap(keys, args)
    if #keys ~= 1 or #args ~= 2 then
        return fail('reap', keys[1] or '?', 'needs 1 key (council:leases) ' ..
                    'and 2 arguments (limit, expire_s)')
    end
    local limit, expire_s = uint(args[1]), expire_arg(args[2])
    if limit == nil or limit < 1 then
        return fail('reap', keys[1], 'limit must be a positive integer')
    end
    if expire_s == nil then
        return fail('reap', keys[1], 'expire_s must be a positive integer')
    end
    local now = now_ms()
    local due = redis.call('ZRANGEBYSCORE', keys[1], '-inf', now, 'LIMIT', 0,
                           limit)
    local reaped, dropped = {}, {}
    for _, r in ipairs(due) do
        local key = run_key(r)
        local h, err = load_run('reap', key)
        if err or not h or h.state ~= 'running' then
            -- Redis lost the run (or it is corrupted): the lease means
            -- nothing any more; report it rather than guess an outcome.
            redis.call('ZREM', keys[1], r)
            dropped[#dropped + 1] = r
        else
            local outcome = h.cancel and 'cancelled' or 'crashed'
            local seq = h.last_seq + 1
            redis.call('HSET', key, 'gen', h.gen + 1)
            err = write_terminal('reap', key, key .. ':ev', r, seq,
                                 {'outcome', outcome, 'reason',
                                  'worker lost', 'ts_ms', now},
                                 outcome, 'worker lost', expire_s, now)
            if err then
                -- The stream disagrees with the hash (it holds seq or
                -- later): end the run in the hash alone and report it.
                redis.call('HSET', key, 'state', outcome, 'reason',
                           'worker lost', 'ended_ms', now)
                redis.call('ZREM', keys[1], r)
                redis.call('EXPIRE', key, expire_s)
                redis.call('PUBLISH', 'council:done', r)
                dropped[#dropped + 1] = r
            else
                reaped[#reaped + 1] = r
            end
        end
    end
    return {reaped, dropped}
end

local function version()
    return VERSION
end

redis.register_function('council_v1_enqueue', enqueue)
redis.register_function('council_v1_claim', claim)
redis.register_function('council_v1_append', append)
redis.register_function('council_v1_renew', renew)
redis.register_function('council_v1_finish', finish)
redis.register_function('council_v1_cancel', cancel)
redis.register_function('council_v1_reap', reap)
redis.register_function{function_name = 'council_v1_version',
                        callback = version, flags = {'no-writes'}}
