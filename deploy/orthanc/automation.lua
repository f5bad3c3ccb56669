-- autorthanc-functions: Orthanc's only job here is to say "this resource is stable".
-- Orthanc's whole REST API is blocked while a Lua callback runs (one Lua context, every REST
-- request takes its mutex), so this posts {changeType, resourceId} and returns. The function app
-- answers 202 at once and never calls Orthanc while handling the request. A lost post (function
-- app down, Orthanc restarted) is recovered by the change-feed timer, which reads /changes.

local url = os.getenv('AUTOMATION_EVENTS_URL') or 'http://127.0.0.1:7071/api/orthanc/events'
local key = os.getenv('AUTOMATION_FUNCTION_KEY') or ''

local function notify(changeType, resourceId)
  local headers = { ['Content-Type'] = 'application/json' }
  if key ~= '' then
    headers['x-functions-key'] = key
  end
  local body = '{"changeType":"' .. changeType .. '","resourceId":"' .. resourceId .. '"}'
  -- HttpPost gives nil on a connection failure and "" on an HTTP error status; neither is fatal.
  local answer = HttpPost(url, body, headers)
  if answer == nil or answer == '' then
    print('autorthanc-functions: ' .. changeType .. ' ' .. resourceId ..
      ' not accepted by the function app; the change feed will deliver it')
  end
end

function OnStableStudy(studyId, tags, metadata)
  notify('StableStudy', studyId)
end

function OnStableSeries(seriesId, tags, metadata)
  notify('StableSeries', seriesId)
end
