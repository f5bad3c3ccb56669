// OHIF viewer configuration for autorthanc-functions (compose profile "viewer").
// nginx serves the viewer and Orthanc's DICOMweb (/dicom-web/) on the same origin (OHIF_PORT), so the
// browser asks once for Orthanc's login and no CORS is involved.
/* global window */
(function () {
  var root = window.location.origin + '/dicom-web';
  window.config = {
    routerBasename: '/',
    showStudyList: true,
    extensions: [],
    modes: [],
    maxNumberOfWebWorkers: 3,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    defaultDataSourceName: 'orthanc',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'orthanc',
        configuration: {
          friendlyName: 'Orthanc (autorthanc-functions)',
          name: 'orthanc',
          wadoUriRoot: root,
          qidoRoot: root,
          wadoRoot: root,
          qidoSupportsIncludeField: false,
          supportsReject: false,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: false,
          supportsWildcard: true,
          dicomUploadEnabled: false,
          omitQuotationForMultipartRequest: true,
          bulkDataURI: { enabled: true },
        },
      },
    ],
  };
})();
