-- RedisLedger: reserve. Atomic: purge expired reservations, check every limit, hold the amount.
-- KEYS[1] state hash (total, day_s, day, week_s, week, month_s, month, reserved; micro-dollars)
-- KEYS[2] sorted set of reservation ids scored by expiry (Unix ms)
-- KEYS[3] hash reservation id -> amount
-- ARGV: now, amount, ttl_ms, id, day_s, week_s, month_s, lim_day, lim_week, lim_month, lim_total
--       (a limit of -1 is unset)
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  local held = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  redis.call('HINCRBY', KEYS[1], 'reserved', -held)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
end

local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if reserved < 0 then
  redis.call('HSET', KEYS[1], 'reserved', 0)
  reserved = 0
end

local function spent(name, start)
  if name == 'total' then
    return tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
  end
  if redis.call('HGET', KEYS[1], name .. '_s') == start then
    return tonumber(redis.call('HGET', KEYS[1], name) or '0')
  end
  return 0
end

local periods = {{'day', ARGV[5]}, {'week', ARGV[6]}, {'month', ARGV[7]}, {'total', ''}}
for i, p in ipairs(periods) do
  local limit = tonumber(ARGV[7 + i])
  if limit >= 0 then
    local used = spent(p[1], p[2]) + reserved
    if used + amount > limit then
      return {0, i - 1, math.max(limit - used, 0)}
    end
  end
end

redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
redis.call('HSET', KEYS[3], ARGV[4], amount)
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
return {1, 0, 0}
