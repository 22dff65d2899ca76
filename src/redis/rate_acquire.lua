-- RedisRateLimitStore: acquire. Checks every limit, then charges all of them or none.
-- Per check j (0-based): KEYS[1+2j], KEYS[2+2j] and ARGV[4+4j .. 7+4j] = kind, limit, window_ms, cost
--   kind 0, a sliding window: KEYS = a sorted set of charge times (member = score = the Unix ms)
--           and a hash time -> units, with the field `sum`
--   kind 1, a UTC day: KEYS = the day's counter (twice)
-- ARGV[1] now (Unix ms), ARGV[2] number of checks, ARGV[3] next UTC midnight (Unix ms)
-- Returns {1} or {0, index, remaining, reset_unix_ms}
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local midnight = tonumber(ARGV[3])

-- Units still counted at `now` (expired charges dropped first).
local function used(kind, z, h, len)
  if kind == 1 then
    return tonumber(redis.call('GET', z) or '0')
  end
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - len)
  for _, at in ipairs(old) do
    redis.call('HINCRBY', h, 'sum', -tonumber(redis.call('HGET', h, at) or '0'))
    redis.call('HDEL', h, at)
  end
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - len)
  end
  return tonumber(redis.call('HGET', h, 'sum') or '0')
end

-- When the oldest charges free `need` units.
local function freed_at(z, h, len, need)
  local freed = 0
  for _, at in ipairs(redis.call('ZRANGE', z, 0, -1)) do
    freed = freed + tonumber(redis.call('HGET', h, at) or '0')
    if freed >= need then
      return tonumber(at) + len
    end
  end
  return now + len
end

for j = 0, n - 1 do
  local kind, limit = tonumber(ARGV[4 + 4 * j]), tonumber(ARGV[5 + 4 * j])
  local len, cost = tonumber(ARGV[6 + 4 * j]), tonumber(ARGV[7 + 4 * j])
  local z, h = KEYS[1 + 2 * j], KEYS[2 + 2 * j]
  local u = used(kind, z, h, len)
  if u + cost > limit then
    local reset = midnight
    if kind == 0 and cost > limit then
      reset = now + len
    elseif kind == 0 then
      reset = freed_at(z, h, len, u + cost - limit)
    end
    return {0, j, math.max(limit - u, 0), reset}
  end
end

for j = 0, n - 1 do
  local kind, len, cost = tonumber(ARGV[4 + 4 * j]), ARGV[6 + 4 * j], ARGV[7 + 4 * j]
  local z, h = KEYS[1 + 2 * j], KEYS[2 + 2 * j]
  if tonumber(cost) > 0 then
    if kind == 1 then
      redis.call('INCRBY', z, cost)
      -- Relative to the caller's clock (ARGV), not Redis's: expires a minute after that midnight.
      redis.call('PEXPIRE', z, midnight - now + 60000)
    else
      redis.call('ZADD', z, ARGV[1], ARGV[1])
      redis.call('HINCRBY', h, ARGV[1], cost)
      redis.call('HINCRBY', h, 'sum', cost)
      redis.call('PEXPIRE', z, len)
      redis.call('PEXPIRE', h, len)
    end
  end
end
return {1}
