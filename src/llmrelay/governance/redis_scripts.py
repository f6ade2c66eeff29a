"""The Lua scripts of the Redis backend (registered once, called by EVALSHA).

One script call admits a whole plan atomically: Redis runs a script without
interleaving other commands, so N gateway instances hammering one key see one truth.
Time comes from the Redis server (``TIME``), not from the instances, whose clocks may
disagree.

Data, per limit (a sliding log): a sorted set of ``<ticket>:<amount>`` scored by the
admission time in ms, plus a ``:sum`` counter of the amounts in it. Per budget: the
spend counter (integer nano-dollars, seeded from the database when absent) and the
open reservations, a sorted set of ``<ticket>:<amount>`` scored by their expiry, with
its own ``:sum``. Integers cross into Lua as strings and leave through
``string.format('%d')``, because Lua's default number formatting would turn large
counts into ``1e+15``, which ``INCRBY`` refuses.
"""

from __future__ import annotations

_COMMON = """
local function int(n) return string.format('%d', n) end
local function amount_of(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end
-- Drop entries scored at or below cutoff; return the sum of what is left.
local function purge(zkey, skey, cutoff)
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', cutoff)
  if #old > 0 then
    local dropped = 0
    for i = 1, #old do dropped = dropped + amount_of(old[i]) end
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', cutoff)
    redis.call('DECRBY', skey, int(dropped))
  end
  if redis.call('ZCARD', zkey) == 0 then
    redis.call('DEL', skey)
    return 0
  end
  return tonumber(redis.call('GET', skey) or '0')
end
"""

#: KEYS: per limit (log, sum); per budget (spend, reservations, reservations sum).
#: ARGV: ticket, #limits, #budgets, reservation ttl ms,
#:       per limit (limit, window ms, amount, kind), per budget (limit nanos, amount nanos).
#: Returns {1, -1, 0, used, reset ms, ..., spent, reserved, ...} when admitted,
#: {0, index of the refusing limit or budget, retry ms, ...same...} when refused,
#: {-1, budget index, ...} when budget spend counters must be seeded first.
ADMIT = (
    _COMMON
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ticket = ARGV[1]
local nl = tonumber(ARGV[2])
local nb = tonumber(ARGV[3])
local res_ttl = tonumber(ARGV[4])
local lb = 5
local bb = 5 + 4 * nl

local missing = {-1}
for j = 1, nb do
  if redis.call('EXISTS', KEYS[2 * nl + 3 * (j - 1) + 1]) == 0 then
    missing[#missing + 1] = j - 1
  end
end
if #missing > 1 then return missing end

local out = {1, -1, 0}
local worst, worst_retry = -1, -1
for i = 1, nl do
  local zkey, skey = KEYS[2 * i - 1], KEYS[2 * i]
  local a = lb + 4 * (i - 1)
  local limit, window = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local used = purge(zkey, skey, now - window)
  local reset = 0
  local first = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  if #first > 0 then reset = tonumber(first[2]) + window - now end
  out[#out + 1] = used
  out[#out + 1] = reset
  if used >= limit then
    -- When will the units drop below the limit?
    local excess = used - limit + 1
    local retry = window
    if ARGV[a + 3] == 'requests' then
      -- One unit per entry: the entry that has to leave is at index excess - 1.
      local entry = redis.call('ZRANGE', zkey, excess - 1, excess - 1, 'WITHSCORES')
      if #entry > 0 then retry = tonumber(entry[2]) + window - now end
    else
      local start = 0
      while excess > 0 do
        local page = redis.call('ZRANGE', zkey, start, start + 99, 'WITHSCORES')
        if #page == 0 then break end
        for k = 1, #page, 2 do
          excess = excess - amount_of(page[k])
          if excess <= 0 then
            retry = tonumber(page[k + 1]) + window - now
            break
          end
        end
        start = start + 100
      end
    end
    if retry > worst_retry then worst, worst_retry = i - 1, retry end
  end
end
local budget_hit = -1
for j = 1, nb do
  local base = 2 * nl + 3 * (j - 1)
  local limit = tonumber(ARGV[bb + 2 * (j - 1)])
  local spent = tonumber(redis.call('GET', KEYS[base + 1]) or '0')
  local reserved = purge(KEYS[base + 2], KEYS[base + 3], now)
  out[#out + 1] = spent
  out[#out + 1] = reserved
  if budget_hit < 0 and spent + reserved >= limit then budget_hit = j - 1 end
end
if budget_hit >= 0 then
  out[1] = 0
  out[2] = nl + budget_hit
  return out
end
if worst >= 0 then
  out[1] = 0
  out[2] = worst
  out[3] = worst_retry
  return out
end
for i = 1, nl do
  local a = lb + 4 * (i - 1)
  local window, amount = ARGV[a + 1], ARGV[a + 2]
  redis.call('ZADD', KEYS[2 * i - 1], int(now), ticket .. ':' .. amount)
  redis.call('INCRBY', KEYS[2 * i], amount)
  redis.call('PEXPIRE', KEYS[2 * i - 1], window)
  redis.call('PEXPIRE', KEYS[2 * i], window)
end
for j = 1, nb do
  local base = 2 * nl + 3 * (j - 1)
  local amount = ARGV[bb + 2 * (j - 1) + 1]
  redis.call('ZADD', KEYS[base + 2], int(now + res_ttl), ticket .. ':' .. amount)
  redis.call('INCRBY', KEYS[base + 3], amount)
  redis.call('PEXPIRE', KEYS[base + 2], int(res_ttl))
  redis.call('PEXPIRE', KEYS[base + 3], int(res_ttl))
end
return out
"""
)

#: KEYS: as ADMIT, then the ticket's "settled" marker.
#: ARGV: ticket, #limits, #budgets, marker ttl ms, live (1) or replayed (0),
#:       per limit (reserved amount, real amount; 0 drops the entry),
#:       per budget (reserved nanos, exact cost nanos).
#: Returns 1 when applied, 0 when this ticket was already settled (a replayed copy),
#: {-1, budget index, ...} when a live settlement finds spend counters missing.
#: A live settlement runs before the call's usage row is queued, so the database does
#: not hold its cost yet: a missing counter is seeded first and the cost added to it.
#: A replayed one ran after its row was queued: a missing counter will be seeded from
#: the database, which holds the cost, so it is added only to a counter that exists.
SETTLE = (
    _COMMON
    + """
local ticket = ARGV[1]
local nl = tonumber(ARGV[2])
local nb = tonumber(ARGV[3])
if ARGV[5] == '1' then
  local missing = {-1}
  for j = 1, nb do
    local cost = ARGV[7 + 2 * nl + 2 * (j - 1)]
    if tonumber(cost) > 0 and redis.call('EXISTS', KEYS[2 * nl + 3 * (j - 1) + 1]) == 0 then
      missing[#missing + 1] = j - 1
    end
  end
  if #missing > 1 then return missing end
end
if not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', ARGV[4]) then return 0 end
for i = 1, nl do
  local old, new = ARGV[6 + 2 * (i - 1)], ARGV[7 + 2 * (i - 1)]
  if old ~= new then
    local zkey, skey = KEYS[2 * i - 1], KEYS[2 * i]
    local member = ticket .. ':' .. old
    local score = redis.call('ZSCORE', zkey, member)
    if score then
      redis.call('ZREM', zkey, member)
      if tonumber(new) > 0 then
        redis.call('ZADD', zkey, score, ticket .. ':' .. new)
      end
      redis.call('INCRBY', skey, int(tonumber(new) - tonumber(old)))
    end
  end
end
local bb = 6 + 2 * nl
for j = 1, nb do
  local base = 2 * nl + 3 * (j - 1)
  local old, cost = ARGV[bb + 2 * (j - 1)], ARGV[bb + 2 * (j - 1) + 1]
  if redis.call('ZREM', KEYS[base + 2], ticket .. ':' .. old) == 1 then
    redis.call('DECRBY', KEYS[base + 3], old)
  end
  if tonumber(cost) > 0 and redis.call('EXISTS', KEYS[base + 1]) == 1 then
    redis.call('INCRBY', KEYS[base + 1], cost)
  end
end
return 1
"""
)

#: KEYS: per budget (spend, reservations, reservations sum).
#: ARGV: ticket, #budgets, reservation ttl ms, per budget (limit nanos, held nanos,
#:       new nanos). Raises a running call's reservation from ``held`` to ``new`` when
#: every budget still has room (``spent + reserved`` below the limit: the admission
#: rule). Returns -1 when raised, else the index of the budget with no room left.
EXTEND = (
    _COMMON
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ticket = ARGV[1]
local nb = tonumber(ARGV[2])
local res_ttl = tonumber(ARGV[3])
for j = 1, nb do
  local base = 3 * (j - 1)
  local spent = tonumber(redis.call('GET', KEYS[base + 1]) or '0')
  local reserved = purge(KEYS[base + 2], KEYS[base + 3], now)
  if spent + reserved >= tonumber(ARGV[4 + 3 * (j - 1)]) then return j - 1 end
end
for j = 1, nb do
  local base = 3 * (j - 1)
  local held, new = ARGV[5 + 3 * (j - 1)], ARGV[6 + 3 * (j - 1)]
  if redis.call('ZREM', KEYS[base + 2], ticket .. ':' .. held) == 1 then
    redis.call('DECRBY', KEYS[base + 3], held)
  end
  redis.call('ZADD', KEYS[base + 2], int(now + res_ttl), ticket .. ':' .. new)
  redis.call('INCRBY', KEYS[base + 3], new)
  redis.call('PEXPIRE', KEYS[base + 2], int(res_ttl))
  redis.call('PEXPIRE', KEYS[base + 3], int(res_ttl))
end
return -1
"""
)
