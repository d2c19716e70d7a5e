module.exports = { scanTransaction(tx) { return null; } };
