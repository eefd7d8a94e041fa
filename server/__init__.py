"""engram_ls.server"""
