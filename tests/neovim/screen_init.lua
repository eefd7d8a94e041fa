-- init.lua for a real terminal Neovim inside tmux: once the workspace is indexed it presses K on
-- `apply_discount` and signals the test with `tmux wait-for -S $ENGRAM_TMUX_CHANNEL` when the popup is open.
vim.opt.rtp:prepend(os.getenv("ENGRAM_PLUGIN_DIR"))
vim.cmd("filetype on")
vim.cmd("syntax on")
vim.o.winborder = "rounded"
vim.o.number = true
vim.o.laststatus = 0
vim.g.engram_ls_no_autostart = true
vim.cmd("runtime plugin/engram_ls.lua")
local engram = require("engram_ls")
engram.setup({ cmd = { "engram-ls", "serve" }, settings = vim.json.decode(os.getenv("ENGRAM_SETTINGS") or "{}") })

local function signal(what)
  if what ~= "hover shown" then
    vim.api.nvim_echo({ { "engram-ls test: " .. what } }, false, {}) -- visible in the failure's screen dump
  end
  vim.fn.system({ "tmux", "-L", os.getenv("ENGRAM_TMUX_SOCKET"), "wait-for", "-S", os.getenv("ENGRAM_TMUX_CHANNEL") })
end

local function indexed(client)
  local reply = client:request_sync("workspace/executeCommand", { command = "engram.status", arguments = {} }, 5000)
  local index = reply and reply.result and reply.result.index or {}
  for _, info in pairs(index) do
    if info.indexing or (info.files or 0) == 0 then return false end
  end
  return next(index) ~= nil
end

local function float_text()
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(w).relative ~= "" then
      return table.concat(vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(w), 0, -1, false), "\n"), w
    end
  end
  return nil
end

-- a state machine on a timer: the UI stays live while we wait for the server
local deadline = vim.uv.now() + 300000
local pressed = false
local next_press = 0
local timer = vim.uv.new_timer()
timer:start(50, 50, vim.schedule_wrap(function()
  if vim.uv.now() > deadline then
    timer:stop()
    return signal("timed out: attached=" .. tostring(engram.client() ~= nil) .. " pressed=" .. tostring(pressed))
  end
  local client = engram.client(0)
  if not pressed then
    if vim.uv.now() >= next_press and client and indexed(client) then
      pressed = true
      vim.api.nvim_win_set_cursor(0, { 15, 16 })
      vim.api.nvim_feedkeys("K", "m", false)
    end
  else
    local text, win = float_text()
    if text and text:find("on its way", 1, true) then
      -- the model was still warming: the fast path answered and the explanation follows; hover again, as a user would
      vim.api.nvim_win_close(win, true)
      pressed, next_press = false, vim.uv.now() + 1000
    elseif text then
      timer:stop()
      vim.cmd("redraw")
      signal("hover shown")
    end
  end
end))
