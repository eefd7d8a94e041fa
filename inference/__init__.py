"""engram_ls.inference"""
