-- RedisRateLimitStore: give back what one charge took (keys and kind as rate_acquire.lua).
-- ARGV: kind, units, charged at (Unix ms)
local units = tonumber(ARGV[2])
if ARGV[1] == '1' then
  local count = tonumber(redis.call('GET', KEYS[1]) or '0')
  if count > 0 then
    redis.call('DECRBY', KEYS[1], math.min(units, count))
  end
  return 1
end
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
local back = math.min(units, held)
if back > 0 then
  redis.call('HINCRBY', KEYS[2], 'sum', -back)
  if redis.call('HINCRBY', KEYS[2], ARGV[3], -back) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[3])
    redis.call('ZREM', KEYS[1], ARGV[3])
  end
end
return 1
