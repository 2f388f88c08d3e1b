"""Lua scripts of the Redis outbox; ARGV[1] is always the key prefix.

Each script is atomic on the server, so the "head of its stream" rule holds across instances.
An event set aside leaves its stream's queue for a queue of its own, its *lane*
(`<stream>~<id>`, in the event's `lane` field), which `ob:due` schedules like a stream.
"""

ENQUEUE = """
-- KEYS: event, seen, queue, due. ARGV: prefix, id, stream, body, now, created_at, seen_ms, ttl_ms
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'stream', ARGV[3], 'body', ARGV[4], 'attempts', 0,
           'created_at', ARGV[6], 'state', 'pending')
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[7])
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[8])
redis.call('ZADD', KEYS[4], 'NX', ARGV[5], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[8])
return 1
"""

LEASE = """
-- KEYS: due. ARGV: prefix, now, lease_until, owner, limit
local streams = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[5])
local out = {}
for _, stream in ipairs(streams) do
  local queue = ARGV[1] .. 'ob:q:' .. stream
  while true do
    local id = redis.call('LINDEX', queue, 0)
    if not id then
      redis.call('ZREM', KEYS[1], stream)
      break
    end
    local event = ARGV[1] .. 'ob:ev:' .. id
    local f = redis.call('HMGET', event, 'state', 'body', 'attempts', 'created_at', 'stream')
    if f[1] ~= 'pending' then
      redis.call('LPOP', queue)  -- expired, delivered or dead: no longer the head
    else
      redis.call('HSET', event, 'owner', ARGV[4])
      redis.call('ZADD', KEYS[1], ARGV[3], stream)
      table.insert(out, {id, f[5], f[2], f[3], f[4]})
      break
    end
  end
end
return out
"""

# Drop an event from its stream and let the stream's next event go (shared by ACK and BURY).
_NEXT = """
local queue = ARGV[1] .. 'ob:q:' .. stream
redis.call('LREM', queue, 1, ARGV[2])
if redis.call('LLEN', queue) > 0 then
  redis.call('ZADD', KEYS[1], now, stream)
else
  redis.call('ZREM', KEYS[1], stream)
end
"""

ACK = """
-- KEYS: due. ARGV: prefix, id, now
local event = ARGV[1] .. 'ob:ev:' .. ARGV[2]
local f = redis.call('HMGET', event, 'state', 'stream', 'lane')
if f[1] ~= 'pending' then return 0 end
local stream, now = f[3] or f[2], ARGV[3]
redis.call('DEL', event)
""" + _NEXT + """
return 1
"""

RETRY = """
-- KEYS: due. ARGV: prefix, id, owner, at, error, ttl_ms
local event = ARGV[1] .. 'ob:ev:' .. ARGV[2]
local f = redis.call('HMGET', event, 'state', 'stream', 'owner', 'lane')
if f[1] ~= 'pending' or f[3] ~= ARGV[3] then return 0 end
redis.call('HINCRBY', event, 'attempts', 1)
redis.call('HSET', event, 'last_error', ARGV[5])
redis.call('HDEL', event, 'owner')
redis.call('PEXPIRE', event, ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[4], f[4] or f[2])
return 1
"""

SET_ASIDE = """
-- KEYS: due. ARGV: prefix, id, owner, at, error, ttl_ms, now
local event = ARGV[1] .. 'ob:ev:' .. ARGV[2]
local f = redis.call('HMGET', event, 'state', 'stream', 'owner', 'lane')
if f[1] ~= 'pending' or f[3] ~= ARGV[3] then return 0 end
redis.call('HINCRBY', event, 'attempts', 1)
redis.call('HSET', event, 'last_error', ARGV[5])
redis.call('HDEL', event, 'owner')
redis.call('PEXPIRE', event, ARGV[6])
local lane = f[4]
if not lane then
  local stream, now = f[2], ARGV[7]
""" + _NEXT + """
  lane = stream .. '~' .. ARGV[2]
  redis.call('HSET', event, 'lane', lane)
  local own = ARGV[1] .. 'ob:q:' .. lane
  redis.call('RPUSH', own, ARGV[2])
  redis.call('PEXPIRE', own, ARGV[6])
end
redis.call('ZADD', KEYS[1], ARGV[4], lane)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"""

BURY = """
-- KEYS: due, dead. ARGV: prefix, id, owner, now, error, ttl_ms, forget_before
local event = ARGV[1] .. 'ob:ev:' .. ARGV[2]
local f = redis.call('HMGET', event, 'state', 'stream', 'owner', 'lane')
if f[1] ~= 'pending' or f[3] ~= ARGV[3] then return 0 end
local stream, now = f[4] or f[2], ARGV[4]
redis.call('HINCRBY', event, 'attempts', 1)
redis.call('HSET', event, 'state', 'dead', 'last_error', ARGV[5], 'dead_at', now)
redis.call('HDEL', event, 'owner')
redis.call('PEXPIRE', event, ARGV[6])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
""" + _NEXT + """
return 1
"""

REVIVE = """
-- KEYS: due, dead. ARGV: prefix, now, ttl_ms, then the ids to revive, in order.
-- Returns how many were dead and are queued again.
local revived = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local event = ARGV[1] .. 'ob:ev:' .. id
  local f = redis.call('HMGET', event, 'state', 'stream')
  if f[1] == 'dead' then
    redis.call('HSET', event, 'state', 'pending', 'attempts', 0)
    redis.call('HDEL', event, 'last_error', 'dead_at', 'lane')  -- back in its call's order
    redis.call('PEXPIRE', event, ARGV[3])
    redis.call('ZREM', KEYS[2], id)
    local queue = ARGV[1] .. 'ob:q:' .. f[2]
    redis.call('RPUSH', queue, id)
    redis.call('PEXPIRE', queue, ARGV[3])
    redis.call('ZADD', KEYS[1], 'NX', ARGV[2], f[2])
    revived = revived + 1
  end
end
if revived > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return revived
"""

DELETE_DEAD = """
-- KEYS: dead, seen. ARGV: prefix, id, seen_ms
local event = ARGV[1] .. 'ob:ev:' .. ARGV[2]
if redis.call('HGET', event, 'state') ~= 'dead' then return 0 end
redis.call('DEL', event)
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])  -- a duplicate is still recognised
return 1
"""

BACKLOG = """
-- KEYS: due, dead. ARGV: prefix, max_streams, forget_before
-- Pending: the ids queued on each stream that has any (the soonest due first, at most
-- max_streams of them); dead: the dead list, less what is old enough to be forgotten.
local streams = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local pending = 0
for _, stream in ipairs(streams) do
  pending = pending + redis.call('LLEN', ARGV[1] .. 'ob:q:' .. stream)
end
return {pending, redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[3], '+inf')}
"""
