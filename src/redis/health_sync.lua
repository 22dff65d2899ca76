-- One replica's health sync: publish its verdicts, read everyone else's.
-- KEYS[1]: the health hash (one field per replica).
-- ARGV[1]: this replica's id; ARGV[2]: its verdicts (lines "degraded cooldown_ms model tag");
-- ARGV[3]: how long (ms) an entry counts after it was written.
-- Returns {age_ms, verdicts, age_ms, verdicts, ...} for the other replicas' live entries.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local life = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], now .. '\n' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], life)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local field, value = all[i], all[i + 1]
  local nl = string.find(value, '\n', 1, true)
  local at = nl and tonumber(string.sub(value, 1, nl - 1))
  if not at or now - at > life then
    redis.call('HDEL', KEYS[1], field)
  elseif field ~= ARGV[1] then
    out[#out + 1] = now - at
    out[#out + 1] = string.sub(value, nl + 1)
  end
end
return out
