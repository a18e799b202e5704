// Run by the JanusGraph image's Gremlin Console after the server starts
// (/docker-entrypoint-initdb.d): a composite index on `uid`, where GremlinStore keeps the
// project's string ids, so every upsert and lookup by id is an index hit, not a scan.
:remote connect tinkerpop.server conf/remote.yaml session
:remote console
mgmt = graph.openManagement()
if (mgmt.getPropertyKey('uid') == null) {
    uid = mgmt.makePropertyKey('uid').dataType(String.class).cardinality(org.janusgraph.core.Cardinality.SINGLE).make()
    mgmt.buildIndex('byUid', Vertex.class).addKey(uid).buildCompositeIndex()
}
mgmt.commit()
