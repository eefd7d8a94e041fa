-- Drives the engram-ls Neovim plugin headless the way a user does (K, :Engram* commands, the code-action menu,
-- <C-x><C-o>) and writes what it saw to $ENGRAM_TEST_OUT as JSON. Every wait is vim.wait on a condition.
local out_path = os.getenv("ENGRAM_TEST_OUT")
local target = os.getenv("ENGRAM_TEST_FILE")
local lua_file = vim.fs.joinpath(vim.fs.dirname(vim.fs.dirname(target)), "tools", "report.lua")
local only = os.getenv("ENGRAM_STEPS") -- comma-separated step names; unset: all
local patience = tonumber(os.getenv("ENGRAM_WAIT_MS") or "") or 60000 -- the longest wait for a model answer
local results = { errors = {}, notifications = {}, progress = {}, echoed = {} }

local function save()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.json.encode(results))
  f:close()
end

local final_status -- set once the client is known: engram.status at the end, for the test (and its failure message)
local function finish()
  if final_status then
    local ok, s = pcall(final_status)
    results.final_status = ok and s or nil
  end
  save()
  vim.cmd("qa!")
end

local function wanted(name)
  return not only or vim.tbl_contains(vim.split(only, ","), name)
end

local function step(name, fn)
  if not wanted(name) then
    return
  end
  local ok, err = pcall(fn)
  if not ok then
    results.errors[name] = tostring(err)
  end
end

local function wait(what, timeout, predicate)
  if not vim.wait(timeout, predicate, 20) then
    error("timed out after " .. timeout .. " ms waiting for " .. what)
  end
end

local function text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

local function float_win()
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(w).relative ~= "" then
      return w
    end
  end
end

if os.getenv("ENGRAM_SIMULATE_NVIM_010") then
  -- Neovim 0.10 has neither: the plugin must take its vim.lsp.start path
  vim.lsp.config, vim.lsp.enable = nil, nil
end

vim.notify = function(msg, level)
  table.insert(results.notifications, { msg = msg, level = level or vim.log.levels.INFO })
end

-- what reaches the user about indexing: each $/progress report, vim.lsp.status() at that moment, and what the
-- plugin echoed in the command line
vim.api.nvim_create_autocmd("LspProgress", {
  callback = function(ev)
    local value = vim.tbl_get(ev.data, "params", "value") or {}
    table.insert(results.progress, { kind = value.kind, title = value.title, message = value.message,
                                     status = vim.lsp.status() })
  end,
})
local echo = vim.api.nvim_echo
vim.api.nvim_echo = function(chunks, history, opts)
  local line = table.concat(vim.tbl_map(function(c) return c[1] end, chunks))
  if line:find("engram-ls", 1, true) then table.insert(results.echoed, line) end
  return echo(chunks, history, opts)
end

vim.opt.rtp:prepend(os.getenv("ENGRAM_PLUGIN_DIR"))
vim.cmd("filetype on")
vim.g.engram_ls_no_autostart = true
vim.cmd("runtime plugin/engram_ls.lua")
local engram = require("engram_ls")
if os.getenv("ENGRAM_PLAIN_SETUP") then
  engram.setup({ cmd = { "engram-ls", "serve" } }) -- a new user's setup(): no settings at all
else
  engram.setup({
    cmd = { "engram-ls", "serve" },
    settings = vim.json.decode(os.getenv("ENGRAM_SETTINGS") or "{}"),
  })
end

vim.cmd("edit " .. vim.fn.fnameescape(target))
local bufnr = vim.api.nvim_get_current_buf()
local client

local function back_to_source()
  vim.cmd("only")
  vim.cmd("buffer " .. bufnr)
end

step("attach", function()
  wait("the client to attach", 30000, function() return engram.client(bufnr) ~= nil end)
  results.attached = true
  results.omnifunc = vim.bo[bufnr].omnifunc
  client = engram.client(bufnr)
end)
if not client then
  return finish()
end

local function status()
  local reply = client:request_sync("workspace/executeCommand", { command = "engram.status", arguments = {} }, 10000, bufnr)
  return reply and reply.result
end
final_status = status

step("indexed", function()
  wait("indexing", 60000, function()
    local s = status()
    if not s then return false end
    for _, info in pairs(s.index or {}) do
      if info.indexing or (info.files or 0) == 0 then return false end
    end
    return next(s.index or {}) ~= nil
  end)
  results.status = status()
end)

step("hover", function()
  vim.api.nvim_win_set_cursor(0, { 15, 16 }) -- on apply_discount in `return apply_discount(subtotal)`
  vim.cmd("normal K")
  local win
  wait("a hover window after K", patience, function() win = float_win(); return win ~= nil end)
  results.hover = text(vim.api.nvim_win_get_buf(win))
  vim.api.nvim_win_close(win, true)
end)

-- A hover that answered before the model finished says the explanation is on its way: K again shows it.
step("hover_again", function()
  results.hovers = { results.hover }
  if results.hover:find("on its way", 1, true) then
    wait("the explanation to finish in the background", patience, function()
      local s = status()
      return s and s.hover and s.hover.explained > 0
    end)
    vim.api.nvim_win_set_cursor(0, { 15, 16 })
    vim.cmd("normal K")
    local win
    wait("a hover window after K", patience, function() win = float_win(); return win ~= nil end)
    table.insert(results.hovers, text(vim.api.nvim_win_get_buf(win)))
    vim.api.nvim_win_close(win, true)
  end
end)

-- The user picks "Engram: Add docstring" from the code-action menu on line `line` of buffer `buf`.
local function pick_docstring(buf, line)
  local select = vim.ui.select
  results.actions = {}
  vim.ui.select = function(items, opts, on_choice)
    local chosen
    for _, item in ipairs(items) do
      local title = opts.format_item(item)
      table.insert(results.actions, title)
      if title:find("Engram: Add docstring", 1, true) then chosen = item end
    end
    vim.ui.select = select
    on_choice(chosen)
  end
  vim.api.nvim_win_set_buf(0, buf)
  vim.api.nvim_win_set_cursor(0, { line, 0 })
  vim.lsp.buf.code_action()
end

step("code_action", function()
  -- on `class ShoppingCart:`: the stub model's "code" does not parse, so the server offers no edit and says why
  back_to_source()
  local tick, n = vim.b[bufnr].changedtick, #results.notifications
  pick_docstring(bufnr, 4)
  wait("the refused edit to be reported", 30000, function() return #results.notifications > n end)
  results.action_refused = { told = results.notifications[n + 1], changed = vim.b[bufnr].changedtick ~= tick }
  -- a Lua file (no parser check on the server): the edit lands in the buffer
  vim.cmd("edit " .. vim.fn.fnameescape(lua_file))
  local lua_buf = vim.api.nvim_get_current_buf()
  wait("the client to attach to the Lua file", 30000, function() return engram.client(lua_buf) ~= nil end)
  tick = vim.b[lua_buf].changedtick
  pick_docstring(lua_buf, 1)
  wait("the docstring edit in the buffer", 30000, function() return vim.b[lua_buf].changedtick ~= tick end)
  results.buffer_after_action = text(lua_buf)
  vim.cmd("edit!") -- back to the file on disk for the next steps
end)

local function quickfix_for(title)
  local qf = vim.fn.getqflist({ title = 0, items = 0 })
  if qf.title ~= title or #qf.items == 0 then return nil end
  local items = {}
  for _, item in ipairs(qf.items) do
    table.insert(items, { file = vim.api.nvim_buf_get_name(item.bufnr), lnum = item.lnum, text = item.text })
  end
  return items
end

step("search", function()
  back_to_source()
  vim.cmd("EngramSearch download a web page")
  wait(":EngramSearch to fill the quickfix list", 30000, function()
    results.quickfix = quickfix_for("engram-ls: download a web page")
    return results.quickfix ~= nil
  end)
  results.quickfix_open = vim.bo.buftype == "quickfix"
end)

-- :EngramSearch while a hover popup is open: the popup closes and the quickfix list is in view.
step("search_over_hover", function()
  back_to_source()
  vim.api.nvim_win_set_cursor(0, { 15, 16 })
  vim.cmd("normal K")
  wait("a hover window after K", patience, function() return float_win() ~= nil end)
  vim.cmd("EngramSearch take ten percent off")
  wait(":EngramSearch to fill the quickfix list", 30000, function()
    return quickfix_for("engram-ls: take ten percent off") ~= nil
  end)
  local qf_win
  for _, info in ipairs(vim.fn.getwininfo()) do
    if info.quickfix == 1 and info.loclist == 0 and info.tabnr == vim.fn.tabpagenr() then qf_win = info end
  end
  results.search_over_hover = { float_left = float_win() ~= nil, quickfix_window = qf_win ~= nil,
                                quickfix_height = qf_win and qf_win.height or 0,
                                current_is_quickfix = vim.bo.buftype == "quickfix" }
end)

-- A search the server refuses: the user is told why through vim.notify.
step("search_error", function()
  back_to_source()
  local n = #results.notifications
  local done = false
  engram.search("   ", function() done = true end)
  wait("the failed search to call back", 30000, function() return done end)
  results.search_error = vim.list_slice(results.notifications, n + 1)
end)

step("engram_sub", function()
  back_to_source()
  vim.cmd("Engram search retry a failed request")
  wait(":Engram search to fill the quickfix list", 30000, function()
    results.sub_quickfix = quickfix_for("engram-ls: retry a failed request")
    return results.sub_quickfix ~= nil
  end)
end)

local function wait_scratch(what, prefix)
  local buf
  wait(what, 60000, function()
    local name = vim.api.nvim_buf_get_name(0)
    if name:find(prefix, 1, true) == 1 then buf = vim.api.nvim_get_current_buf() end
    return buf ~= nil
  end)
  return buf
end

step("ask", function()
  back_to_source()
  vim.cmd("EngramAsk How is the discount applied?")
  local buf = wait_scratch(":EngramAsk to open its answer", "engram://How_is")
  results.ask_buffer = text(buf)
  results.ask_filetype = vim.bo[buf].filetype
  for i, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if l:match("%(file://[^)]+#L%d+%)") then
      vim.api.nvim_win_set_cursor(0, { i, 0 })
      results.citation_line = l
      vim.api.nvim_feedkeys(vim.keycode("<CR>"), "mx", false) -- the buffer's own <CR> mapping
      results.jumped_to = { file = vim.api.nvim_buf_get_name(0), line = vim.api.nvim_win_get_cursor(0)[1] }
      break
    end
  end
end)

step("explain", function()
  back_to_source()
  vim.cmd("13,15EngramExplain")
  local buf = wait_scratch(":EngramExplain to open its answer", "engram://explain")
  results.explain_buffer = text(buf)
  back_to_source()
  vim.api.nvim_win_set_cursor(0, { 14, 8 }) -- inside total_price, no range: the symbol around the cursor
  vim.cmd("EngramExplain")
  buf = wait_scratch(":EngramExplain (no range) to open its answer", "engram://explain")
  results.explain_symbol_buffer = text(buf)
end)

local function refactor(choice)
  back_to_source()
  vim.cmd("edit " .. vim.fn.fnameescape(lua_file)) -- not parse-checked by the server: the stub's edit is offered
  local buf = vim.api.nvim_get_current_buf()
  local tick = vim.b[buf].changedtick
  local select = vim.ui.select
  local asked
  vim.ui.select = function(items, opts, on_choice)
    asked = { items = items, prompt = opts.prompt, preview = text(0), filetype = vim.bo.filetype }
    on_choice(choice)
  end
  vim.cmd("2,4EngramRefactor use a constant")
  wait("the refactor confirmation", 30000, function() return asked ~= nil end)
  vim.ui.select = select
  if choice == "Apply" then
    wait("the refactoring in the buffer", 30000, function() return vim.b[buf].changedtick ~= tick end)
  end
  asked.changed = vim.b[buf].changedtick ~= tick
  vim.api.nvim_win_set_buf(0, buf)
  vim.cmd("edit!") -- back to the file on disk
  return asked
end

step("refactor", function()
  results.refactor_discarded = refactor("Discard")
  results.refactor_applied = refactor("Apply")
  back_to_source()
end)

step("status", function()
  back_to_source()
  local n = #results.notifications
  vim.cmd("EngramStatus")
  wait(":EngramStatus to report", 30000, function() return #results.notifications > n end)
  results.status_message = results.notifications[#results.notifications].msg
end)

step("checkhealth", function()
  vim.cmd("checkhealth engram_ls")
  results.health = text(0)
end)

step("commands", function()
  results.commands = vim.fn.getcompletion("Engram", "command")
  results.subcommands = vim.fn.getcompletion("Engram ", "cmdline")
end)

-- Completion needs Insert mode, which only the main loop gives: start <C-x><C-o> and poll from a timer.
if not wanted("completion") then
  return finish()
end
back_to_source()
vim.cmd("edit!") -- the file as on disk: a new line under `return apply_discount(subtotal)`
vim.cmd("normal! G")
vim.o.completeopt = "menu,menuone,noinsert" -- a menu even for one suggestion, nothing inserted until <C-y>
local deadline = vim.uv.now() + patience
local timer = vim.uv.new_timer()
vim.api.nvim_feedkeys(vim.keycode("o<C-x><C-o>"), "t", false)
local asked = false -- the completion request is in flight
results.completion_tries = 1
timer:start(20, 20, vim.schedule_wrap(function()
  local info = vim.fn.complete_info({ "items", "mode", "pum_visible" })
  if (#info.items == 0 or info.pum_visible ~= 1) and vim.uv.now() < deadline then
    local pending = next(client.requests or {}) ~= nil
    if pending then
      asked = true
    elseif asked then -- answered with nothing to offer (the model wrote only blank lines): ask again, as a user would
      asked = false
      results.completion_tries = results.completion_tries + 1
      vim.api.nvim_feedkeys(vim.keycode("<C-x><C-o>"), "t", false)
    end
    return
  end
  timer:stop()
  timer:close()
  if #info.items == 0 then
    results.errors.completion = "timed out after " .. patience .. " ms waiting for <C-x><C-o> to show a menu"
    local row, col = unpack(vim.api.nvim_win_get_cursor(0)) -- what the server offered, for the failure message
    local reply = client:request_sync("textDocument/completion", { textDocument = { uri = vim.uri_from_bufnr(0) },
                                      position = { line = row - 1, character = col } }, patience, bufnr)
    results.completion_reply = reply and reply.result
    results.line_before_accept = vim.api.nvim_get_current_line()
    return finish()
  end
  results.completion = {}
  for _, item in ipairs(info.items) do
    local lsp_item = vim.tbl_get(item, "user_data", "nvim", "lsp", "completion_item") or {}
    table.insert(results.completion, { word = item.word, menu = item.menu, text_edit = lsp_item.textEdit,
                                       insert_text = lsp_item.insertText })
  end
  results.completion_mode = info.mode
  results.line_before_accept = vim.api.nvim_get_current_line()
  vim.api.nvim_feedkeys(vim.keycode("<C-y><Esc>"), "t", false) -- accept the first (selected) item
  local accepted = vim.uv.new_timer()
  accepted:start(20, 20, vim.schedule_wrap(function()
    if vim.api.nvim_get_mode().mode ~= "n" and vim.uv.now() < deadline then
      return
    end
    accepted:stop()
    accepted:close()
    results.accepted_line = vim.api.nvim_get_current_line()
    results.buffer_after_completion = text(bufnr)
    finish()
  end))
end))
