-- engram-ls: commands and default enablement. No setup() call is required.
if vim.g.loaded_engram_ls then
  return
end
vim.g.loaded_engram_ls = true

local function engram()
  return require("engram_ls")
end

local subcommands = {
  ask = function(args) engram().ask(args.rest) end,
  search = function(args) engram().search(args.rest) end,
  explain = function(args) engram().explain(args.opts) end,
  refactor = function(args) engram().refactor(args.rest ~= "" and args.rest or nil, args.opts) end,
  status = function() engram().status() end,
  reindex = function() engram().execute("engram.reindex", nil) end,
}

vim.api.nvim_create_user_command("Engram", function(opts)
  local sub, rest = opts.args:match("^(%S+)%s*(.*)$")
  local fn = subcommands[sub or ""]
  if not fn then
    vim.notify("engram-ls: unknown subcommand " .. (sub or "''"), vim.log.levels.ERROR)
    return
  end
  fn({ rest = rest or "", opts = opts })
end, {
  nargs = "+",
  range = true,
  desc = "engram-ls: ask | search | explain | refactor | status | reindex",
  complete = function(arglead, cmdline)
    if cmdline:match("^%S+%s+%S+%s") then
      return {}
    end
    return vim.tbl_filter(function(name) return name:find(arglead, 1, true) == 1 end, vim.tbl_keys(subcommands))
  end,
})

vim.api.nvim_create_user_command("EngramAsk", function(o) engram().ask(o.args) end, { nargs = "+", desc = "engram-ls: ask the workspace" })
vim.api.nvim_create_user_command("EngramSearch", function(o) engram().search(o.args) end, { nargs = "+", desc = "engram-ls: search similar code" })
vim.api.nvim_create_user_command("EngramExplain", function(o) engram().explain(o) end, { range = true, desc = "engram-ls: explain the selection" })
vim.api.nvim_create_user_command("EngramRefactor", function(o) engram().refactor(o.args, o) end, { nargs = "+", range = true, desc = "engram-ls: refactor the selection" })
vim.api.nvim_create_user_command("EngramStatus", function() engram().status() end, { desc = "engram-ls: status" })

if not vim.g.engram_ls_no_autostart then
  engram().enable()
end
